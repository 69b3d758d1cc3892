# PANN: the two commands a newcomer runs are `make demo` and `make test`.
# Both install what they need first (the Rust toolchain is assumed: rustup/cargo).

CARGO ?= cargo
WITH_TORCH = LIBTORCH="$$(scripts/install-torch.sh --print-libtorch)"

.PHONY: demo test deps torch trainer-deps build bench fashion-mnist

## Run the main job on the embedded default: a real multi-party session over TLS on loopback.
demo: deps
	$(CARGO) build --release -p pann-bin
	./target/release/pann demo

## Run the whole test suite (what CI runs). The trainer links libtorch: `torch`
## installs it first (idempotent) and LIBTORCH points the tch build at it.
# CARGO_INCREMENTAL=0: a one-off build gains nothing from incremental state,
# which would double the disk a clean clone needs.
# Style and documentation are checks too: formatting, clippy with warnings as
# errors, and rustdoc without warnings (every library crate denies missing docs).
test: deps torch fashion-mnist
	$(CARGO) fmt --all --check
	$(CARGO) fmt --check --manifest-path fuzz/Cargo.toml
	CARGO_INCREMENTAL=0 $(WITH_TORCH) $(CARGO) clippy --workspace --all-targets -- -D warnings
	@# Without networking (how the trainer and the models crate build them), too.
	CARGO_INCREMENTAL=0 $(CARGO) clippy -p pann-mpc-core -p pann-protocols --no-default-features --lib -- -D warnings
	CARGO_INCREMENTAL=0 $(WITH_TORCH) $(CARGO) test --workspace --all-targets --no-fail-fast
	CARGO_INCREMENTAL=0 $(WITH_TORCH) $(CARGO) test --workspace --doc
	CARGO_INCREMENTAL=0 RUSTDOCFLAGS="-D warnings" $(WITH_TORCH) $(CARGO) doc --workspace --no-deps
	@# The network crate (cards, calibration, planner) stays free of networking.
	@if $(CARGO) tree -p pann-models -e normal | grep -E ' (tokio|rustls|tokio-rustls) v'; then \
		echo "pann-models depends on networking crates (above)"; exit 1; fi
	@echo "pann-models: no tokio, no TLS in its dependencies"
	@# The approximation crate (sign polynomials, Alpha, Precision) has no networking either.
	@if $(CARGO) tree -p pann-approx -e normal | grep -E ' (tokio|rustls|tokio-rustls) v'; then \
		echo "pann-approx depends on networking crates (above)"; exit 1; fi
	@echo "pann-approx: no tokio, no TLS in its dependencies"

## Build everything in release mode.
build: deps torch
	$(WITH_TORCH) $(CARGO) build --release --workspace

## Criterion micro-benchmarks (long; not part of the tests). The sweep behind
## BENCHMARKS.md is scripts/bench.sh.
bench: deps torch
	$(WITH_TORCH) $(CARGO) bench --workspace

## System packages the build needs (a C toolchain); idempotent.
deps:
	@command -v cc >/dev/null 2>&1 || { echo "installing a C toolchain (build-essential)"; \
		(apt-get update && apt-get install -y build-essential) || sudo sh -c 'apt-get update && apt-get install -y build-essential'; }
	@command -v $(CARGO) >/dev/null 2>&1 || { echo "cargo not found: install Rust from rustup first"; exit 1; }

## libtorch for the trainer (tch): torch 2.13.0 into .venv. Default: the
## minimal CPU install for tch; TORCH_FLAGS=--python adds an importable torch
## (scripts/pytorch_reference.py), TORCH_FLAGS=--full is for GPU machines.
torch trainer-deps:
	@command -v python3 >/dev/null 2>&1 && python3 -m venv --help >/dev/null 2>&1 || { echo "installing python3-venv"; \
		(apt-get update && apt-get install -y python3 python3-venv python3-pip) || sudo sh -c 'apt-get update && apt-get install -y python3 python3-venv python3-pip'; }
	scripts/install-torch.sh $(TORCH_FLAGS)

## Fashion-MNIST (Debian's dataset-fashion-mnist) for the test that reads the
## whole dataset and for scripts/fashion-mnist.sh. Best effort: without it that
## test skips visibly (the other Fashion-MNIST tests use the subset in the repo).
fashion-mnist:
	@[ -d /usr/share/datasets/fashion-mnist ] || { echo "installing dataset-fashion-mnist"; \
		(apt-get update && apt-get install -y dataset-fashion-mnist) || sudo sh -c 'apt-get update && apt-get install -y dataset-fashion-mnist' \
		|| echo "warning: dataset-fashion-mnist not installed; the whole-dataset test will skip"; }
