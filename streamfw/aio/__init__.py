"""The asyncio API of streamfw: the same concepts and names as the sync API, awaited.

``streamfw.aio.spi`` is what a transport implements to run natively on the event loop.
"""
