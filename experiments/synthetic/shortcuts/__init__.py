"""The shortcut suite: every method of the library on shortcut benchmarks, with controls."""
