"""Provider simulator: free providers as recorded, over loopback HTTP, streamed or not, scripted."""

from services.simulator.server import RunningSimulator, start_simulator

__all__ = ["RunningSimulator", "start_simulator"]
