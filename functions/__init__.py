"""Server side of the serverless Caterva2: storage engine, API, Lambda handlers."""
