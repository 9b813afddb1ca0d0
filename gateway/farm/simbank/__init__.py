"""SIM banks: the inventory of every SIM seen in a slot, and the rotation that brings them live.

Spec: simbank.md §5.3 and §6. The pool never learns about slots: it is offered a SIM while its
channel is not held, like any other modem's.
"""
