"""Customer-service vertical: voice or text ticket -> ASR -> sentiment/intent -> FAQ-grounded LLM -> TTS.

``from puyu_apps.service import CustomerServicePipeline``. Importing this package loads no speech, audio or
database library: faster-whisper, soundfile and SQLAlchemy are imported when first used.
"""

from .errors import (AudioError, AudioTooLongError, EmptyAudioError, NotAudioError, SilentAudioError,
                     SpeechEngineError, TicketStoreError)
from .pipeline import CustomerServicePipeline, Session
from .result import ServiceTurnResult

__all__ = ["AudioError", "AudioTooLongError", "CustomerServicePipeline", "EmptyAudioError", "NotAudioError",
           "ServiceTurnResult", "Session", "SilentAudioError", "SpeechEngineError", "TicketStoreError"]
