# Quality metrics for generators: FID, KID, precision/recall, IS, PPL and equivariance.
