"""picorder's recorder: supervises one ffmpeg per camera stream and indexes its segments."""

__version__ = "0.1.0"
