"""The seed's producer: a message every second to the global stream ``streamQuickstart``.

    STREAMFW_URL=macrometa+http://127.0.0.1:8080 MACROMETA_API_KEY=demo.streamfw.emulator \
        python examples/producer.py [COUNT]

STREAMFW_URL picks the target: the emulator as above, GDN (macrometa://play.paas.macrometa.io
with your key), or, by default, an in-process loopback broker.
"""

import itertools
import os
import sys
import time

import streamfw

count = int(sys.argv[1]) if len(sys.argv) > 1 else None  # None: until Ctrl-C

with streamfw.connect(os.environ.get("STREAMFW_URL", "loopback://")) as client:
    stream = client.stream("streamQuickstart").create(exist_ok=True)
    with stream.producer() as producer:
        for n in itertools.islice(itertools.count(1), count):
            message_id = producer.send(f"Hello streamfw #{n}")
            print(f"sent #{n} ({message_id})", flush=True)
            time.sleep(1)
