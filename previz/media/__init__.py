"""Media: encoding and decoding takes with the ffmpeg binary (imageio-ffmpeg ships one)."""

__all__: list[str] = []
