# Networks, losses, augmentation, datasets and the training loop.
