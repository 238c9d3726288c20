"""The live mouse chart: its page (views), its Socket.IO handlers (live) and the worker's emitter."""
