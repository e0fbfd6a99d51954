# The OpenAI-compatible HTTP gateway + browser page (gateway/app.py) in front of a running server.
#   make serve                                   # one shell: Triton on HTTP_PORT (8000)
#   make gateway                                 # another: http://127.0.0.1:8080/ (page), /v1/audio/transcriptions
#   make gateway GATEWAY_PORT=9000 GATEWAY_TRITON_URL=10.0.0.5:8000 GATEWAY_HOST=0.0.0.0
# The gateway holds no model logic: uploads go as-is to the ensemble's AUDIO_FILE input.
GATEWAY_HOST ?= 127.0.0.1
GATEWAY_PORT ?= 8080
GATEWAY_SCREENSHOT_REPO ?= build/repos/reference
GATEWAY_SCREENSHOT_AUDIO ?=
GATEWAY_TRITON_URL ?= 127.0.0.1:$(HTTP_PORT)
# /v1/realtime streams to Triton over gRPC
GATEWAY_TRITON_GRPC_URL ?= 127.0.0.1:$(GRPC_PORT)

.PHONY: gateway
gateway: venv  ## OpenAI-compatible /v1/audio/transcriptions, /v1/realtime + page at / (GATEWAY_PORT, GATEWAY_TRITON_URL, GATEWAY_TRITON_GRPC_URL)
	TRITON_URL=$(GATEWAY_TRITON_URL) TRITON_GRPC_URL=$(GATEWAY_TRITON_GRPC_URL) $(PY) -m uvicorn gateway.app:app --host $(GATEWAY_HOST) --port $(GATEWAY_PORT)

.PHONY: browser-deps
BROWSER_DEPS = chromium=chromium
browser-deps:  ## Debian's chromium for the page's browser test (Playwright drives it; never `playwright install`)
	@bash $(SYSTEM_DEPS) "browser deps" $(BROWSER_DEPS)

.PHONY: docs-gateway-screenshot
docs-gateway-screenshot: venv  ## docs/gateway-page.png: the page with a real transcript (needs chromium; GATEWAY_SCREENSHOT_REPO, GATEWAY_SCREENSHOT_AUDIO)
	$(PY) tools/dev/gateway_screenshot.py --repository $(GATEWAY_SCREENSHOT_REPO) --audio $(GATEWAY_SCREENSHOT_AUDIO) --out docs/gateway-page.png
