"""The HTTP layer: Caterva2's REST protocol over FastAPI (wrapped by Mangum on Lambda)."""
