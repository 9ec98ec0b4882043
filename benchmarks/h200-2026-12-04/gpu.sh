#!/usr/bin/env bash
# The GPU checks of one lease, in one go: each part bounded so that a slow one leaves the rest their time.
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
L=$OUT/log.txt
say() { echo "=== $* ($(date +%T))" | tee -a $L; }
say machine
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"; nproc; } 2>&1 | tee -a $L
say gpu_check paper preset, every Table 1 row, 300 iterations
timeout 170 python3 -m ablation.gpu_check 2>&1 | tee -a $L
say bench cuda resnet110
timeout 70 python3 -m ablation.bench --device cuda --arch resnet110 --json 2>&1 | tee -a $L
for n in 1 2 4 8; do
  say "packed: $n runs on one GPU, paper preset, synthetic, 300 steps"
  s=$SECONDS
  timeout 55 python3 -m ablation.run --preset paper --variants original --seeds $n --jobs $n --dataset synthetic \
    --set steps=300 --set milestones=[] --set evals=2 --out /tmp/pack$n > /tmp/pack$n.log 2>&1; echo "rc=$? wall=$((SECONDS-s)) s" | tee -a $L
  tail -2 /tmp/pack$n.log | tee -a $L
  python3 - $n <<'PY' 2>&1 | tee -a $L
import csv, sys
n = sys.argv[1]
rows = list(csv.DictReader(open(f"/tmp/pack{n}/runs.csv")))
ips = [float(r["images_per_s"]) for r in rows if r["images_per_s"]]
print(f"runs per GPU {n}: finished {len(ips)}, images/s per run {[round(x) for x in ips]}, sum {sum(ips):.0f}")
PY
done
say "paper preset, fashion-mnist, original, 1500 steps"
timeout 100 python3 -m ablation.run --preset paper --variants original --seeds 1 --dataset fashion-mnist \
  --set steps=1500 --set "milestones=[750,1125]" --set data_dir=.devcheck/data --out /tmp/paperfm > /tmp/paperfm.log 2>&1; echo "rc=$?" | tee -a $L
tail -3 /tmp/paperfm.log | tee -a $L
python3 -c "
import csv; r=next(csv.DictReader(open('/tmp/paperfm/runs.csv')))
print({k: r[k] for k in ('status','final_test_error','final_train_error','iterations','time_s','images_per_s','device','machine','precision','arch')})" 2>&1 | tee -a $L
cp /tmp/paperfm/runs.csv $OUT/paperfm_runs.csv 2>/dev/null; cp /tmp/pack8/runs.csv $OUT/pack8_runs.csv 2>/dev/null
say done
