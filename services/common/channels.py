"""Client channels between our services: reconnect within seconds after the peer restarts."""

from __future__ import annotations

import json

import grpc

# After an outage, reconnect within seconds rather than gRPC's default of up to two minutes.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5_000),
    ("grpc.keepalive_time_ms", 30_000),
)
# Round robin over every address of a target that lists several — the Selector replicas of
# `make run` (`ipv4:a:p,b:q`) — or names them through DNS (compose's `dns:///selector:50051`): a
# replica that is down is skipped until it is back (ADR 15). A plain `host:port` keeps gRPC's
# pick_first, which reconnects at the first call after its peer restarted, where round robin
# would first wait out its reconnect backoff.
ROUND_ROBIN = (("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),)


def balanced(address: str) -> bool:
    """Whether `address` is a target of several addresses, balanced round robin."""
    return "," in address or address.startswith("dns:")


def channel_options(address: str, *, private: bool = False) -> tuple[tuple[str, object], ...]:
    """The options of a channel to `address` (see open_channel)."""
    options: tuple[tuple[str, object], ...] = CHANNEL_OPTIONS
    if balanced(address):
        options += ROUND_ROBIN
    if private:
        options += (("grpc.use_local_subchannel_pool", 1),)
    return options


def open_channel(address: str, *, private: bool = False) -> grpc.aio.Channel:
    """An insecure client channel to `address`.

    gRPC shares connections (subchannels) between channels to the same target in one process;
    `private=True` gives the channel its own, so its state is independent of other channels.
    """
    return grpc.aio.insecure_channel(address, options=channel_options(address, private=private))
