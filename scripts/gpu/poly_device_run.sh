#!/bin/bash
# Device-machine driver for scripts/gpu/finetune_poly.py (issue 16: alpha <= 5 within
# 1 point of the exact-ReLU reference). Three calls made back to back while the machine
# stays warm (/tmp survives between them; runs started with setsid outlive a call):
#
#   stage1: carry .gpu-carry/a (CIFAR data_batch_1..3, packed by pack_cifar.py):
#           unpack into /tmp/cifar; bench: 11 processes at once (3 exact-ReLU, 8 polynomial
#           alpha 5 + teacher + penalty) time training steps -> /tmp/bench, $OUT.
#   stage2: carry .gpu-carry/b (data_batch_4, 5, test_batch packed; resnet20-akamaster.safetensors):
#           unpack; choose the CIFAR epochs E from the bench so that everything ends before
#           DEADLINE (= now + BUDGET s); start the CIFAR runs detached and return:
#             phase A: ref (exact ReLU, the fair reference and the teacher), p4 (alpha 4, no KD)
#             phase B (after ref): p4-kd, p5-kd, p4-kd-ste, p4-kd-nopen, mix45-kd, stage654-kd
#   stage3: carry .gpu-carry/c (the four Fashion-MNIST IDX .gz files): start the Fashion-MNIST
#           chain detached (backbone from scratch, then ref / p4 / p5, then p4-kd / p5-kd after
#           ref), wait for every run or the deadline, pack results into $OUT.
# Env: PY (python3), OUT, BUDGET (stage2: seconds from its start to the deadline, default 560),
#      EXTRA (more finetune_poly.py flags for every run, e.g. a local smoke test),
#      CIFAR_EPOCHS / FM_EPOCHS / FM_BB_EPOCHS to force epoch counts.
set -u
PY=${PY:-python3}
CG=${CARRY:-.gpu-carry}
S=scripts/gpu/finetune_poly.py
C=/tmp/cifar; FM=/tmp/fmnist; R=/tmp/pout; L=/tmp/plogs
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
mkdir -p "$C" "$FM" "$R/cifar" "$R/fmnist" "$L" "$OUT"
echo "== $1 $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), 'gpu', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)"
COMMON="--threads 1 --penalty-rho 0.9 ${EXTRA:-}"
launch() {  # name, log, command...: detached (survives the end of the call)
    local name=$1; shift
    setsid nohup "$@" > "$L/$name.log" 2>&1 < /dev/null &
    echo "$!" >> /tmp/run-pids
    echo "started $name (pid $!)"
}
case "$1" in
stage1)
    t=$(date +%s)
    $PY scripts/gpu/pack_cifar.py unpack $CG/a "$C" || exit 1
    echo "unpack a: $(( $(date +%s) - t )) s"
    rm -f /tmp/run-pids
    # the PANN ReLU of finetune_poly.py against the Rust SignPoly (models/examples/sign_poly_dump.rs), on this machine
    $PY $S verify --rust-dump $CG/a/sign-poly-dump.json --out-json "$OUT/verify.json"
    B=/tmp/bench; rm -rf $B; mkdir -p $B
    pids=()
    for i in 1 2 3; do $PY $S bench --act exact --max-steps ${BENCH_STEPS:-40} --name exact$i --out $B $COMMON & pids+=($!); done
    for i in 1 2 3 4 5 6 7 8; do $PY $S bench --act poly --alpha 5 --teacher x --penalty 1 --max-steps ${BENCH_STEPS:-40} --name poly$i --out $B $COMMON & pids+=($!); done
    for p in "${pids[@]}"; do wait $p; done
    cat $B/*.json > "$OUT/bench.jsonl"; echo; cat "$OUT/bench.jsonl"
    ;;
stage2)
    T2=$(date +%s); DEADLINE=$(( T2 + ${BUDGET:-560} )); echo $DEADLINE > /tmp/deadline
    $PY scripts/gpu/pack_cifar.py unpack $CG/b "$C" || exit 1
    cp $CG/b/resnet20-akamaster.safetensors /tmp/aka.safetensors || exit 1
    ls -l $C
    E=${CIFAR_EPOCHS:-$($PY - "$DEADLINE" <<'PYEOF'
import glob, json, sys, time
d = float(sys.argv[1]); b = [json.load(open(f)) for f in glob.glob("/tmp/bench/bench-*.json")]
te = max(x["seconds_per_step"] for x in b if x["name"].startswith("exact"))
tp = max(x["seconds_per_step"] for x in b if x["name"].startswith("poly"))
avail = d - time.time() - 100  # data loading, calibration, final evaluations, packing
e = int(avail / (391 * (te + tp) * 1.15 + 4))
print(f"bench: exact {te*1000:.1f} ms/step, poly+KD {tp*1000:.1f} ms/step (11 at once); {avail:.0f} s -> {e} epochs", file=sys.stderr)
print(max(2, min(30, e)))
PYEOF
)}
    echo "CIFAR epochs: $E; deadline $(date -u -d @$DEADLINE +%T)"
    echo "$E" > /tmp/cifar_epochs
    A="--dataset cifar --data $C --norm imagenet --init /tmp/aka.safetensors --epochs $E --out $R/cifar --deadline $DEADLINE $COMMON"
    TEACH=/tmp/teacher-cifar.safetensors; rm -f $TEACH
    launch c-ref bash -c "$PY $S run $A --name resnet20-aka-ft-exact-${E}ep --act exact; f=\$(ls $R/cifar/resnet20-aka-ft-exact-*.safetensors | head -1); [ -n \"\$f\" ] && ln -sf \$f $TEACH"
    launch c-p4 $PY $S run $A --name resnet20-aka-ft-p4-${E}ep --alpha 4 --penalty 1
    K="--teacher $TEACH --wait-for $TEACH"
    launch c-p4-kd $PY $S run $A $K --name resnet20-aka-ft-p4-kd-${E}ep --alpha 4 --penalty 1
    launch c-p5-kd $PY $S run $A $K --name resnet20-aka-ft-p5-kd-${E}ep --alpha 5 --penalty 1
    launch c-p4-kd-ste $PY $S run $A $K --name resnet20-aka-ft-p4-kd-ste-${E}ep --alpha 4 --penalty 1 --grad ste
    launch c-p4-kd-nopen $PY $S run $A $K --name resnet20-aka-ft-p4-kd-nopen-${E}ep --alpha 4 --penalty 0
    launch c-mix45-kd $PY $S run $A $K --name resnet20-aka-ft-mix45-kd-${E}ep --alpha 4 --alpha-mix 4,5 --penalty 1
    launch c-stage654-kd $PY $S run $A $K --name resnet20-aka-ft-stage654-kd-${E}ep --alpha 4 --alpha-stages 6,5,4 --penalty 1
    sleep ${STAGE2_WAIT:-8}; tail -n 3 $L/c-*.log
    ;;
stage3)
    DEADLINE=$(cat /tmp/deadline)
    cp $CG/c/*-ubyte.gz "$FM"/ || exit 1
    sha256sum $FM/*
    read EF EB < <(${PY} - "$DEADLINE" <<'PYEOF'
import glob, json, sys, time, os
d = float(sys.argv[1]); b = [json.load(open(f)) for f in glob.glob("/tmp/bench/bench-*.json")]
te = max(x["seconds_per_step"] for x in b if x["name"].startswith("exact"))
tp = max(x["seconds_per_step"] for x in b if x["name"].startswith("poly"))
avail = d - time.time() - 110
ef = int(avail / (469 * (3 * te + tp) * 1.15 + 8))  # backbone 2 EF epochs, then exact ref, then KD runs
ef = max(1, min(15, ef)); eb = 2 * ef
ef = int(os.environ.get("FM_EPOCHS", ef)); eb = int(os.environ.get("FM_BB_EPOCHS", eb))
print(f"fmnist: {avail:.0f} s -> backbone {eb} epochs, fine-tuning {ef} epochs", file=sys.stderr)
print(ef, eb)
PYEOF
)
    echo "Fashion-MNIST: backbone $EB epochs, fine-tuning $EF epochs; deadline $(date -u -d @$DEADLINE +%T)"
    BB=/tmp/fm-backbone.safetensors; TEACH=/tmp/teacher-fm.safetensors; rm -f $BB $TEACH
    F="--dataset fmnist --data $FM --norm fmnist --out $R/fmnist --deadline $DEADLINE --calib 5000 $COMMON"
    launch f-bb bash -c "$PY $S run $F --init none --act exact --lr 0.1 --weight-decay 1e-4 --epochs $EB --name fmnist-resnet20-gpu-standard-${EB}ep; f=\$(ls $R/fmnist/fmnist-resnet20-gpu-standard-*.safetensors | head -1); [ -n \"\$f\" ] && ln -sf \$f $BB"
    G="$F --init $BB --wait-for $BB --epochs $EF"
    launch f-ref bash -c "$PY $S run $G --act exact --name fmnist-resnet20-ft-exact-${EF}ep; f=\$(ls $R/fmnist/fmnist-resnet20-ft-exact-*.safetensors | head -1); [ -n \"\$f\" ] && ln -sf \$f $TEACH"
    launch f-p4 $PY $S run $G --alpha 4 --penalty 1 --name fmnist-resnet20-ft-p4-${EF}ep
    launch f-p5 $PY $S run $G --alpha 5 --penalty 1 --name fmnist-resnet20-ft-p5-${EF}ep
    sleep 1
    # KD runs wait for the teacher (ref), which itself waits for the backbone.
    H="$F --init $BB --epochs $EF --teacher $TEACH --wait-for $TEACH"
    launch f-p4-kd $PY $S run $H --alpha 4 --penalty 1 --name fmnist-resnet20-ft-p4-kd-${EF}ep
    launch f-p5-kd $PY $S run $H --alpha 5 --penalty 1 --name fmnist-resnet20-ft-p5-kd-${EF}ep
    # Wait for every run (their python processes) or the deadline.
    alive() { for p in $(cat /tmp/run-pids); do kill -0 $p 2>/dev/null && return 0; done; return 1; }
    while alive && [ "$(date +%s)" -lt $(( DEADLINE + 20 )) ]; do sleep 5; done
    for p in $(cat /tmp/run-pids); do kill -0 $p 2>/dev/null && echo "run $p still going at the deadline: stopped" && kill -- -$p; done
    sleep 1
    for f in $L/*.log; do echo "== $(basename $f)"; grep -v '^\s*$' "$f" | tail -n 40; done > "$OUT/runs.log"
    tar -C $R -cf "$OUT/cifar.tar" cifar; tar -C $R -cf "$OUT/fmnist.tar" fmnist; tar -C /tmp -cf "$OUT/logs.tar" plogs bench
    ls -l "$OUT"; grep -h "wrote" $L/*.log
    ;;
*) echo "usage: $0 stage1|stage2|stage3"; exit 2 ;;
esac
