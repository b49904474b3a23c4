#!/bin/bash
# Rebuild docs/results.md from run folders: one `imgcls compare` per study, the commands that made its
# runs above each table, the study's own figure beside each row (docs/results_reference.yaml).
#   bash docs/make_results.sh RUNS_ROOT
# RUNS_ROOT holds one folder per section below (eurosat_gpu, eurosat_cpu, transfer, cifar10, cnn64);
# a missing or empty one gets a line that says so instead of its table.
set -euo pipefail
ROOT=${1:?usage: bash docs/make_results.sh RUNS_ROOT}
cd "$(dirname "$0")/.."
IMGCLS=${IMGCLS:-imgcls}
OUT=docs/results.md
TABLES=$(mktemp -d)
trap 'rm -rf "$TABLES"' EXIT

section() {  # folder title; the section's text comes on standard input
    local folder=$1 title=$2
    printf '\n## %s\n\n' "$title" >>"$OUT"
    cat >>"$OUT"
    if [ ! -d "$ROOT/$folder" ]; then
        printf '\n(no runs in %s when this page was made)\n' "$folder" >>"$OUT"
        return
    fi
    if ! "$IMGCLS" compare "$ROOT/$folder" --output "$TABLES/$folder" --no-figures --allow-mixed --skip-untested \
        --reference docs/results_reference.yaml >"$TABLES/$folder.log" 2>&1; then
        printf '\n(no table: %s)\n' "$(tail -n 1 "$TABLES/$folder.log")" >>"$OUT"
        return
    fi
    printf '\n' >>"$OUT"
    cat "$TABLES/$folder/comparison.md" >>"$OUT"
}

cat >"$OUT" <<'EOF'
# Results of the studies, re-run with imgcls

Made by `bash docs/make_results.sh RUNS_ROOT` from the run folders of the commands in each section:
every table is `imgcls compare` over those folders, with `study` the figure the replicated study
reported (from `docs/results_reference.yaml`). `fit_seconds` is the sum of the epochs' wall times
(validation included), `device` what they were measured on; test accuracy is without test-time
augmentation. Runs shorter than their study's are named so in the text.
EOF

section eurosat_gpu "EuroSAT RGB from scratch: ResNet-18 at 64 px, the recipe's switches (GPU)" <<'EOF'
`configs/eurosat_resnet18_fast.yaml` with its two switches on and off, and the previous 25-epoch recipe,
one run after another on one NVIDIA H200 (bf16-mixed), same seed and split (19,440 train, 2,160
validation and 5,400 test images):

```bash
python -m benchmarks.bench_recipes --root ../shared/data/eurosat_rgb --workers 6 \
    --variants ema+resize,previous,resize,ema,plain --runs-dir RUNS_ROOT/eurosat_gpu
```

They ran at commit 2e79497, when the config still trained at batch 128 with shifts of up to 6 px (as the
previous recipe); since then it trains at batch 64 without shifts (next section). Only the previous
recipe reached validation accuracy 0.97, at its epoch 24 of 25.
EOF

section eurosat_cpu "EuroSAT RGB from scratch on the 2-core CPU" <<'EOF'
The config as it stands (batch 64, the 8 flips/quarter turns without shifts, weight average, progressive
resizing; 15 epochs) on a 2-core Intel Xeon (AVX-512 without AVX512-BF16, so 32-true), and one epoch of the
previous recipe for its time per epoch (131.5 s, so about 3,290 s for its 25 epochs; untested, so not in the
table):

```bash
imgcls fit  --config configs/eurosat_resnet18_fast.yaml --data.init_args.max_translate_px 0 \
    --data.init_args.batch_size 64 --experiment eurosat_candidate
imgcls test --config configs/eurosat_resnet18_fast.yaml --experiment eurosat_candidate --ckpt_path best
imgcls fit  --config configs/eurosat_resnet18_fast.yaml --trainer.max_epochs 1 --ema.decay null \
    --progressive_resizing.start_scale null --experiment eurosat_previous_1epoch   # one epoch, timing only
```
EOF

section transfer "EuroSAT transfer protocol: 2,000 images, 224 px, 3 epochs" <<'EOF'
The seed study's protocol (200 images per class for train+val split 70/30, 200 per class for test; SGD
momentum lr 1e-4, head x10; batch 10; 3 epochs) without ImageNet weights, which cannot be downloaded
here; and ResNet-18 from scratch against ResNet-18 starting from the CIFAR-10 checkpoint of the
CIFAR-10 section (what pre-training in imgcls buys). The study's four models (the sweep) did not run in
this round: the GPU lease ended before they finished and the CPU time went to the runs below. The two ResNet-18 runs shared the CPU with a test-suite run, so their times are not quiet:

```bash
imgcls sweep --config configs/sweeps/eurosat_transfer.yaml
imgcls fit  --config configs/eurosat_transfer.yaml --model.backbone resnet18 --experiment resnet18_scratch
imgcls fit  --config configs/eurosat_transfer.yaml --model.backbone resnet18 --experiment resnet18_from_cifar10 \
    --model.pretrained RUNS_ROOT/cifar10/cifar10_resnet18_recipe/version_0/checkpoints/best.ckpt
imgcls test --config configs/eurosat_transfer.yaml --model.backbone resnet18 --experiment EXPERIMENT --ckpt_path best
```
EOF

section cifar10 "CIFAR-10 from scratch at 32 px" <<'EOF'
The comparison's grid (ResNet-18, MobileNet-V2 x0.5, ShuffleNet-V2 x0.5 x SGD, SGD momentum, Adam) ran
**one epoch per run** here (the study ran 50), with `acc_per_gflop` the test accuracy per GFLOP; and
ResNet-18 with the defaults recipe (`configs/base/recipe.yaml`: AdamW one-cycle, label smoothing,
weight average) for 8 epochs and again for 4:

```bash
imgcls sweep --config configs/sweeps/cifar10_study.yaml -- --trainer.max_epochs 1
imgcls fit  --config configs/base/recipe.yaml --data configs/base/data/cifar10_64.yaml \
    --data.init_args.image_size 32 --trainer.max_epochs 8 --experiment cifar10_resnet18_recipe
imgcls test --config configs/base/recipe.yaml --data configs/base/data/cifar10_64.yaml \
    --data.init_args.image_size 32 --experiment cifar10_resnet18_recipe --ckpt_path best
# the same with --trainer.max_epochs 4 --experiment cifar10_resnet18_recipe_4ep
```
EOF

section cnn64 "The 64 px study" <<'EOF'
The study's AlexNet, VGG-16 and ResNet-34 runs need a GPU (VGG-16 at 64 px is 2.7 GFLOPs per image forward
by imgcls's counter, 9 times ResNet-18's 0.30, whose 64 px EuroSAT epoch of 19,440 images took 131 s on the
2-core CPU);
the lease of this round ended before they ran. What ran at 64 px is
ResNet-18 with the defaults recipe on Fashion-MNIST, **5 epochs** (the study: up to 100 with early
stopping), from the defaults-transfer benchmark on an H200:

```bash
python -m benchmarks.bench_defaults_transfer --dataset fashion_mnist \
    --root ../shared/data/fashion_mnist/raw --workers 6 --runs-dir RUNS_ROOT/cnn64
```
EOF
echo "wrote $OUT"
