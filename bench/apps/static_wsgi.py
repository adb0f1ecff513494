"""whitenoise inside a WSGI app: files of ``$BENCH_STATIC_DIR`` at /static/, the hello app elsewhere."""

import os

from whitenoise import WhiteNoise

from bench.apps.hello import wsgi as hello

app = WhiteNoise(hello, root=os.environ["BENCH_STATIC_DIR"], prefix="static/")
