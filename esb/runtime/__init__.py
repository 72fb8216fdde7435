"""The asyncio runtime: engine, pipelines, delivery workers."""
