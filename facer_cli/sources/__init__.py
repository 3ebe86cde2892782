"""Frame sources: photos on disk (decoded safely), folders of them, and a camera or video file."""
