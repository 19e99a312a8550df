"""The seed's second consumer: same exclusive subscription, so it is refused while consumer-1
is attached. Instead of dying like the seed, it waits as a standby and takes over -- receiving
first whatever consumer-1 left unacked -- once consumer-1 leaves.

    STREAMFW_URL=... python examples/consumer_2.py [COUNT]
"""

import os
import sys
import time

import streamfw

count = int(sys.argv[1]) if len(sys.argv) > 1 else None  # None: until Ctrl-C

with streamfw.connect(os.environ.get("STREAMFW_URL", "loopback://")) as client:
    stream = client.stream("streamQuickstart").create(exist_ok=True)
    while True:
        try:
            consumer = stream.consumer("consumer-subscription", type="exclusive")
            break
        except streamfw.SubscriptionBusy as exc:
            print(f"consumer-2 refused ({exc}); retrying in 1 s", flush=True)
            time.sleep(1)
    with consumer:
        print("consumer-2 attached", flush=True)
        for received, msg in enumerate(consumer, 1):
            redelivered = f" (redelivery {msg.redelivery_count})" if msg.redelivery_count else ""
            print(f"consumer-2 received {msg.value!r}{redelivered}", flush=True)
            msg.ack()
            if received == count:
                break
