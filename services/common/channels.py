"""Client channels between our services: reconnect within seconds after the peer restarts."""

from __future__ import annotations

import json

import grpc

# Round robin over every address of the target: the Selector replicas of `make run`
# (`ipv4:a:p,b:q`) or every address DNS gives for a name (compose's `dns:///selector:50051`).
# A replica that is down is skipped until it is back (ADR 15); with one address it is that one.
ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
# After an outage, reconnect within seconds rather than gRPC's default of up to two minutes.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5_000),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.service_config", ROUND_ROBIN),
)


def open_channel(address: str, *, private: bool = False) -> grpc.aio.Channel:
    """An insecure client channel to `address`.

    gRPC shares connections (subchannels) between channels to the same target in one process;
    `private=True` gives the channel its own, so its state is independent of other channels.
    """
    options = CHANNEL_OPTIONS + ((("grpc.use_local_subchannel_pool", 1),) if private else ())
    return grpc.aio.insecure_channel(address, options=options)
