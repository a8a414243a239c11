"""VRRP (RFC 5798 v3, RFC 3768 v2, IPv4 and IPv6), sans-I/O and keepalived-compatible.

- ``packet``: the codec, bytes <-> ``Advert``/``ReceivedAdvert``; one ``MalformedAdvert``.
- ``timers``: exact Skew_Time and Master_Down_Interval (Fraction seconds); ``Timers``.
- ``params``: ``InstanceParams``, one instance's configuration.
- ``receive``: ``validate_advert``, the RFC 5798 §7.1 receive checks.
- ``events`` / ``actions`` / ``states``: what goes into and comes out of the machine.
- ``fsm``: ``VirtualRouter.handle(event, now) -> list[Action]``, the RFC 5798 §6.4 state
  machine; ``acceptance``, ``election``, ``reconfigure``, ``outbox`` and ``counters`` hold
  what needs none of its state.

Nothing here does I/O or reads a clock: the driver in ``runtime/`` owns sockets and timers.
"""
