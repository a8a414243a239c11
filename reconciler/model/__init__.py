"""The desired state as frozen, typed, normalized values: nodes, checks, VRRP, IPVS."""
