"""MILAN's stages, one file each: teacher, masking, vit (student), decoders, losses, milan."""
