# PANN: the two commands a newcomer runs are `make demo` and `make test`.
# Both install what they need first (the Rust toolchain is assumed: rustup/cargo).

CARGO ?= cargo

.PHONY: demo test deps build bench clean-results

## Run the main job on the embedded default: a real multi-party session over TLS on loopback.
demo: deps
	$(CARGO) build --release -p pann-bin
	./target/release/pann demo

## Run the whole test suite (what CI runs).
test: deps
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

## Build everything in release mode.
build: deps
	$(CARGO) build --release --workspace

## Criterion micro-benchmarks (long; not part of the tests).
bench: deps
	$(CARGO) bench --workspace

## System packages the build needs (none beyond a C toolchain today); idempotent.
deps:
	@command -v cc >/dev/null 2>&1 || { echo "installing a C toolchain (build-essential)"; \
		(apt-get update && apt-get install -y build-essential) || sudo sh -c 'apt-get update && apt-get install -y build-essential'; }
	@command -v $(CARGO) >/dev/null 2>&1 || { echo "cargo not found: install Rust from rustup first"; exit 1; }

## libtorch for the trainer (tch): torch 2.13.0 into .venv (minimal CPU install;
## TORCH_FLAGS=--full for GPU machines). The trainer build needs
## LIBTORCH=$$(scripts/install-torch.sh --print-libtorch) in its environment.
.PHONY: trainer-deps
trainer-deps:
	scripts/install-torch.sh $(TORCH_FLAGS)
