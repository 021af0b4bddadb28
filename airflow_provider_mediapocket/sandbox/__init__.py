"""A faithful local emulator of the Media Pocket API v2 for tests, demos and benchmarks."""

from airflow_provider_mediapocket.sandbox.server import MediaPocketSandbox, RawReply, RequestRecord
from airflow_provider_mediapocket.sandbox.state import ApiError, FaultConfig, SandboxState

__all__ = ["ApiError", "FaultConfig", "MediaPocketSandbox", "RawReply", "RequestRecord", "SandboxState"]
