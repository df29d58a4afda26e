"""Provider simulator: a loopback server speaking the OpenAI-compatible and Gemini wire formats."""

from services.simulator.server import RunningSimulator, start_simulator

__all__ = ["RunningSimulator", "start_simulator"]
