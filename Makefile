# Developer entry points. Everything runs from the project's own .venv.
PYTHON3 ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PY      := $(BIN)/python
# Re-install whenever pyproject.toml changes (new dependency, new entry point).
STAMP   := $(VENV)/.installed-stamp
OUT     ?= build/lenet300_100.dcz

.PHONY: venv run demo screenshots test lint samples bench clean dczdump lenet_infer

venv: $(STAMP)

$(PY):
	$(PYTHON3) -m venv $(VENV)

# torch is pinned to 2.13.0 in pyproject.toml: that is the CPU wheel these machines provide.
# The warm-up compiles every numba kernel into its disk cache (~15 s once), so the app's first
# slider move does not.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[test,bench,samples]'
	$(PY) -m inspector.tasks.warmup
	touch $(STAMP)

# The app on the bundled LeNet-300-100 (TorchScript, so it can run) with the paper's settings,
# measuring accuracy on the held-out digits. --allow-code: running our own sample's TorchScript
# code to measure it needs no question.
SAMPLE  := sample_models/lenet300_100_scripted.pt --config sample_models/lenet300_100_paper.json
run: venv
	$(BIN)/inspector gui $(SAMPLE) --data sample_models/mnist_test.h5 --allow-code

# The same without a display: compress the sample and print the paper's table.
demo: venv
	mkdir -p $(dir $(OUT))
	$(BIN)/inspector compress sample_models/lenet300_100.pt -o $(OUT) \
		--config sample_models/lenet300_100_paper.json

screenshots: venv
	QT_QPA_PLATFORM=offscreen $(BIN)/inspector gui $(SAMPLE) --data sample_models/mnist_test.h5 \
		--select ip1.weight --screenshot docs/screenshots/main.png --allow-code
	QT_QPA_PLATFORM=offscreen $(BIN)/inspector gui sample_models/lenet300_100_scripted.pt \
		--data sample_models/mnist_test.h5 --select ip1.weight --allow-code \
		--target-ratio 16 --screenshot docs/screenshots/target.png

test: venv
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

lint: venv
	$(BIN)/ruff check inspector tests scripts
	$(BIN)/lint-imports --no-cache

samples: venv
	$(PY) scripts/build_samples.py

bench: venv
	$(PY) benchmarks/run.py
	QT_QPA_PLATFORM=offscreen $(PY) benchmarks/gui_bench.py

# The portable C decoder (decoder/README.md): no venv needed, only a C99 compiler.
CC      ?= cc
CFLAGS  ?= -std=c99 -O2 -Wall -Wextra
DCZ_LIB := $(filter-out decoder/dczdump.c,$(wildcard decoder/*.c))
dczdump: $(DCZ_LIB) decoder/dczdump.c $(wildcard decoder/*.h)
	$(CC) $(CFLAGS) $(DCZ_LIB) decoder/dczdump.c -o $@ -lm

lenet_infer: $(DCZ_LIB) decoder/examples/lenet_infer.c $(wildcard decoder/*.h)
	$(CC) $(CFLAGS) -Idecoder $(DCZ_LIB) decoder/examples/lenet_infer.c -o $@ -lm

clean:
	rm -rf build .pytest_cache .ruff_cache dczdump lenet_infer
