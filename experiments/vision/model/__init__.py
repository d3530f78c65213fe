"""The vision model: dilated ResNet encoder, DeepLab heads, grounding decoders."""
