"""A stand-in for WeChat's code2session on a local port: code `c-X` logs in as openid `o-X`
(the soak's fake, always answering)."""
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "soak.d"))
import fakes  # noqa: E402

fakes.Wechat().start(int(sys.argv[1]))
threading.Event().wait()
