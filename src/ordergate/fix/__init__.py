"""The FIX 4.4 acceptor (SPEC section 11): ``ordergate serve --fix-port PORT``.

Layers, each its own module: :mod:`.codec` (frames on the wire, over simplefix), :mod:`.session`
(the session protocol as a pure state machine), :mod:`.application` (NewOrderSingle to the
sequencer and back as an ExecutionReport), :mod:`.journal` (the durable counters and sent messages
behind one narrow interface) and :mod:`.server` (the asyncio acceptor that joins them).
"""
