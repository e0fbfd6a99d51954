"""The OpenAI-compatible HTTP gateway and the browser page (gateway/app.py); no model logic."""
