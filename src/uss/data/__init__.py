"""ImageNet-S data: layout, robust image loading, label PNG codec, datasets and the demo generator."""
