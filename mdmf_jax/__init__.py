"""MDMF in JAX/Flax: AI-generated image detection by patch-level MMD."""
