"""The seed's first consumer: the exclusive subscription ``consumer-subscription``.

STREAMFW_URL=... python examples/consumer_1.py [COUNT]
"""

import os
import sys

import streamfw

count = int(sys.argv[1]) if len(sys.argv) > 1 else None  # None: until Ctrl-C

with streamfw.connect(os.environ.get("STREAMFW_URL", "loopback://")) as client:
    stream = client.stream("streamQuickstart").create(exist_ok=True)
    with stream.consumer("consumer-subscription", type="exclusive") as consumer:
        print("consumer-1 attached", flush=True)
        for received, msg in enumerate(consumer, 1):
            print(f"consumer-1 received {msg.value!r}", flush=True)
            msg.ack()
            if received == count:
                break
