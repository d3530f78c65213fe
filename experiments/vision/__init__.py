"""The ResNet-50 CORE-MTL pipeline and the rendered scenes."""
