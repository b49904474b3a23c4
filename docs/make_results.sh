#!/bin/bash
# Rebuild docs/results.md from run folders: one `imgcls compare` per study, the commands that made its
# runs above each table, the study's own figure beside each row (docs/results_reference.yaml).
#   bash docs/make_results.sh RUNS_ROOT
# RUNS_ROOT holds one folder per section below (eurosat_h100, eurosat_h100_screen, eurosat_gpu, eurosat_cpu,
# transfer, tinyimagenet, transfer_tinyimagenet, fewshot_tinyimagenet, cifar10, airbench_cpu, cnn64_diagnosis,
# cnn64_full, cnn64, defaults);
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
    # a few-shot folder's table is fewshot.md; training runs' is comparison.md
    for table in comparison.md fewshot.md; do
        if [ -f "$TABLES/$folder/$table" ]; then cat "$TABLES/$folder/$table" >>"$OUT"; fi
    done
}

notes() {  # title; a section of text only (its runs are not tested, so there is no table)
    printf '\n## %s\n\n' "$1" >>"$OUT"
    cat >>"$OUT"
}

cat >"$OUT" <<'EOF'
# Results of the studies, re-run with imgcls

Made by `bash docs/make_results.sh RUNS_ROOT` from the run folders of the commands in each section:
every table is `imgcls compare` over those folders, with `study` the figure the replicated study
reported (from `docs/results_reference.yaml`). `fit_seconds` is the sum of the epochs' wall times
(validation included), `device` what they were measured on; test accuracy is without test-time
augmentation. Runs shorter than their study's are named so in the text.
EOF

section eurosat_h100 "EuroSAT RGB from scratch: ResNet-18, 97% in 15 epochs (GPU)" <<'EOF'
`configs/eurosat_resnet18_gpu.yaml`: the network keeps more resolution (no max-pool after the first
convolution, the 64 px images upsampled to 128 px when decoded, so layer 4 works on 8x8 maps instead of
2x2; 4.5 GFLOPs per image against 0.30), batch 256, one-cycle SGD to 0.3, the weight average and
progressive resizing (64 px at epoch 0 up to 128 px at epoch 10). One NVIDIA H100 (bf16-mixed, 16 CPU
cores), seed 0, the split above; one run after another with nothing else on the machine, the previous
recipe and the batch-128 run in one command, the batch-256 runs in two later commands on the same
machine:

```bash
python -m benchmarks.bench_recipes --root ../shared/data/eurosat_rgb --workers 2 \
    --variants previous,stem+128px --runs-dir RUNS_ROOT/eurosat_h100/p2
for lr in 0.2 0.1 0.3; do   # lr 0.3 is what --variants gpu and the config now hold
  python -m benchmarks.bench_recipes --root ../shared/data/eurosat_rgb --workers 2 --variants stem+128px \
      --runs-dir RUNS_ROOT/eurosat_h100/b256_lr$lr -- --data.init_args.batch_size=256 \
      --model.optimizer.init_args.lr=$lr --model.lr_scheduler.init_args.max_lr=$lr
done
```

Validation accuracy first reached 0.97 at epoch 13 of 15 (0-based 12), 32.2 s into the fit, for
`b256_lr0.3` (the config), at epoch 24 of 25 after 80.2 s for the previous recipe (0.40x; whole `fit`
commands with their start-up, as the benchmark prints them: 48 s against 94 s, 0.51x) and at epoch 15
after 63.3 s for batch 128; the other two batch-256 runs never reached it. SGD 0.3 is the best of three
learning rates tried at batch 256 on this one split and seed.
EOF

section eurosat_h100_screen "EuroSAT RGB from scratch: the GPU screen that found it" <<'EOF'
Eight 15-epoch variants of `configs/eurosat_resnet18_fast.yaml` at once on the same H100, sharing the GPU
and the 16 cores, so their times do not compare (seed 0, `stem_seed1` seed 1):

```bash
for v in ema+resize stem stem+b128 stem+plain stem+flip 128px stem+128px; do
  python -m benchmarks.bench_recipes --root ../shared/data/eurosat_rgb --workers 2 --variants $v \
      --runs-dir RUNS_ROOT/eurosat_h100_screen/$v &
done
python -m benchmarks.bench_recipes --root ../shared/data/eurosat_rgb --workers 2 --variants stem \
    --runs-dir RUNS_ROOT/eurosat_h100_screen/stem_seed1 -- --seed_everything=1 &
wait
```

Without the max-pool the 64 px network tested 0.9709 and 0.9669 over two seeds, against 0.9635 for the
config as it is; it lost that gain at batch 128 (0.9643), without the two switches (0.9576) and with flips
alone (0.9626). Upsampling to 128 px alone gave 0.9659; both together 0.9720, the only run whose
validation accuracy reached 0.97, and the one the section above timed and tuned.
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

`eurosat_80px` tried inputs upscaled to 80 px (layer 4 at 3x3 instead of 2x2), batch 128, with the sides
this CPU runs fastest (a ResNet-18 step at 32 px ran 569 images/s, at 48 px 201, at 64 px 162, at 80 px
122 in a side-by-side micro-benchmark): 32 px for epochs 0-3, 64 px for 4-10, 80 px for 11-14. It scored
exactly what the 64 px run did and took about as long:

```bash
imgcls fit  --config configs/eurosat_resnet18_fast.yaml --data.init_args.image_size 80 \
    --data.init_args.batch_size 128 --progressive_resizing.start_scale 0.4 \
    --progressive_resizing.full_size_epoch 11 --progressive_resizing.multiple 32 --experiment eurosat_80px
imgcls test --config configs/eurosat_resnet18_fast.yaml --data.init_args.image_size 80 --experiment eurosat_80px --ckpt_path best
```

`eurosat_tvresnet18` is the config as it stands with torchvision's ResNet-18 in place of timm's (the
change that closed the defaults recipe's gap on CIFAR-10, last section); it shared the CPU with about 3
minutes of tests, so its time is not quiet:

```bash
imgcls fit  --config configs/eurosat_resnet18_fast.yaml --model.backbone torchvision/resnet18 --experiment eurosat_tvresnet18
imgcls test --config configs/eurosat_resnet18_fast.yaml --model.backbone torchvision/resnet18 --experiment eurosat_tvresnet18 --ckpt_path best
```

`eurosat_flip` trains on horizontal flips alone (no vertical flips or quarter turns) and resizes with
`multiple: 32` (32 px for epochs 0-4, 64 px from epoch 5), chosen from a grid of 5-epoch runs at 32 px (a
proxy for the 15-epoch run: batch 64 or 128, SGD 0.05 / 0.1 / 0.2, AdamW 2e-3, label smoothing 0 with
weight decay 5e-5, flips alone; final validation accuracy 0.880-0.888 for SGD 0.1 / 0.2 and flips alone,
about one standard error apart, 0.849-0.863 for SGD 0.05, AdamW and the weaker regularisation). It
learned faster (validation 0.9523 at epoch 9 against 0.9365, 0.9708 at the last epoch against 0.9638;
train accuracy 0.985 against 0.959) but tested the same, 0.9620:
its 64 px epochs took 172-208 s against 152-166 s in the earlier runs at the same batch, with nothing
else running (load average 2.0), so the machine ran slower that hour and its fit time does not compare:

```bash
imgcls fit  --config configs/eurosat_resnet18_fast.yaml --data.init_args.augment flip \
    --progressive_resizing.multiple 32 --experiment eurosat_flip
imgcls test --config configs/eurosat_resnet18_fast.yaml --data.init_args.augment flip --experiment eurosat_flip --ckpt_path best
```

`eurosat_flip_b128_noema` is flips alone at batch 128 without the weight average, with three 32 px epochs
instead of five (64 px from epoch 3): the GPU runs above tested 0.2-0.3 points lower with the average
than without, and batch 128 runs this CPU's 64 px epoch faster. Validation reached 0.9620 at the last
epoch, test 0.9604 (2,149 s of fit, 2,176 s for the whole command, nothing else running; its 64 px
epochs took 139-175 s as the machine's speed drifted). Two 5-epoch proxies at 32 px (batch 128, flips, as the grid above; final
validation against 0.8884 for timm's ResNet-18 as it is) ruled out more spatial resolution in the network:
`--model.backbone_kwargs '{"output_stride": 16}'` (layer 4 dilated instead of strided) 0.8773 at 84 s
per epoch, and `--model.stem_pool false` (no max-pool after the first convolution) 0.8407 at 147 s per
epoch against 48 s:

```bash
imgcls fit  --config configs/eurosat_resnet18_fast.yaml --data.init_args.augment flip --data.init_args.batch_size 128 \
    --progressive_resizing.multiple 32 --progressive_resizing.full_size_epoch 6 --ema.decay null \
    --experiment eurosat_flip_b128_noema
imgcls test --config configs/eurosat_resnet18_fast.yaml --data.init_args.augment flip --data.init_args.batch_size 128 \
    --ema.decay null --experiment eurosat_flip_b128_noema --ckpt_path best
```
EOF

section transfer "EuroSAT transfer protocol: 2,000 images, 224 px, 3 epochs" <<'EOF'
The seed study's protocol (200 images per class for train+val split 70/30, 200 per class for test; SGD
momentum lr 1e-4, head x10; batch 10; 3 epochs) without ImageNet weights, which cannot be downloaded
here; and ResNet-18 from scratch against ResNet-18 starting from the CIFAR-10 checkpoint of the
CIFAR-10 section (what pre-training in imgcls buys). The study's four models ran as its sweep on the
2-core Xeon, one after another with nothing else running, from random weights: at lr 1e-4 for 3 epochs
they end at 23-26% test (10 classes) except GoogLeNet (57.5%), so these rows measure the protocol and
its cost, not transfer; with ImageNet weight files, pass each with `--model.pretrained`. The two
ResNet-18 runs shared the CPU with a test-suite run, so their times are not quiet:

```bash
imgcls sweep --config configs/sweeps/eurosat_transfer.yaml -- --runs_dir RUNS_ROOT/transfer
imgcls fit  --config configs/eurosat_transfer.yaml --model.backbone resnet18 --experiment resnet18_scratch
imgcls fit  --config configs/eurosat_transfer.yaml --model.backbone resnet18 --experiment resnet18_from_cifar10 \
    --model.pretrained RUNS_ROOT/cifar10/cifar10_resnet18_recipe/version_0/checkpoints/best.ckpt
imgcls test --config configs/eurosat_transfer.yaml --model.backbone resnet18 --experiment EXPERIMENT --ckpt_path best
```
EOF

section tinyimagenet "Tiny ImageNet pre-training on the 2-core CPU" <<'EOF'
`configs/tinyimagenet_resnet18.yaml`: torchvision's ResNet-18 from scratch on this copy's 202 classes (95,950
training images, 5,050 for validation, the 10,100 labelled val images as the test split), 8 epochs of
one-cycle SGD at batch 256, bf16 autocast, progressive resizing from 32 px to 64 px at epoch 5, on the
2-core Xeon (AVX512-BF16, AMX). Nothing else trained beside it; during epochs 0-2 a few config checks and
a 6-second test ran (epoch 2 took 526 s against 382 s for epoch 3 at the same 48 px). **Top-1 on the
labelled val images: 42.19%** after 3,425 s (57 minutes) of `fit`; the one-cycle schedule was sized to
fit the session, not to the 90 minutes the CPU allows. Its best checkpoint is the backbone of the next
two sections.

```bash
imgcls fit  --config configs/tinyimagenet_resnet18.yaml --data.init_args.root TINY/tiny-imagenet-200 --runs_dir RUNS_ROOT/tinyimagenet
imgcls test --config configs/tinyimagenet_resnet18.yaml --data.init_args.root TINY/tiny-imagenet-200 --runs_dir RUNS_ROOT/tinyimagenet --ckpt_path best
```
EOF

section transfer_tinyimagenet "Transfer from Tiny ImageNet beside random weights: EuroSAT 2,000 images, frozen backbone on CIFAR-10" <<'EOF'
The studies' own protocols with only the weights changed: the Tiny ImageNet ResNet-18 above
(`--model.pretrained`) against the same network from random weights.

- EuroSAT 2,000-image protocol (`configs/eurosat_transfer.yaml`: 70/30 of 200 images per class, 200 per
  class for test, SGD momentum lr 1e-4 with the head x10, batch 10, 3 epochs) at **64 px**, EuroSAT's own
  size and the pre-training's (the study's 224 px would not fit a 64 px backbone; its 30 px shifts at 224
  px become 9 px); three repeats, each with its own seed for the 2,000-image draw and the training.
- The nature-images protocol (`configs/cifar10_frozen_mlp.yaml`: frozen backbone with its batch-norm
  statistics, MLP head of 256 units with dropout 0.5, SGD lr 1e-3 momentum 0.9, batch 64, 8 epochs, the
  Intel study's augmentation) on 1,400 CIFAR-10 images per class (about the Intel study's 14,034) at 64
  px, tested on the official 10,000.

| protocol | Tiny ImageNet weights | random weights | pre-training buys |
|---|---:|---:|---:|
| EuroSAT 2,000 images, 3 epochs (test accuracy, mean of 3 repeats, 95% CI) | **71.47% +- 1.69** (71.55, 72.10, 70.75) | 41.18% +- 4.41 (39.85, 43.20, 40.50) | +30.3 points |
| CIFAR-10, frozen backbone + MLP head, 8 epochs (one seed) | **62.03%** | 26.12% | +35.9 points |

Each EuroSAT run took 17-21 s per epoch on the 2-core Xeon (32-true, as the study config trains), a
CIFAR-10 frozen run 24 s per epoch (bf16). The seed study's 87.2% came from ResNet-50 with the full
ImageNet's weights at 224 px; the 42%-top-1 Tiny ImageNet ResNet-18 at 64 px gets 71.5% from the same 1,400
training images, and the random network's 41% shows what three epochs at lr 1e-4 make of nothing. On
CIFAR-10 the random frozen backbone still separates the classes somewhat (26% against 10% chance): the
MLP head learns from random features.

```bash
CKPT=RUNS_ROOT/tinyimagenet/tinyimagenet_resnet18/version_0/checkpoints/best.ckpt
for seed in 0 1 2; do
  for weights in tinyimagenet random; do
    pretrained=$([ $weights = tinyimagenet ] && echo "--model.pretrained $CKPT")
    args="--config configs/eurosat_transfer.yaml --model configs/base/models/resnet18.yaml \
      --data.init_args.image_size 64 --data.init_args.max_translate_px 9 --seed_everything $seed \
      --data.init_args.seed $seed --runs_dir RUNS_ROOT/transfer_tinyimagenet --experiment eurosat2000_resnet18_$weights"
    imgcls fit $args $pretrained && imgcls test $args --ckpt_path best
  done
done
imgcls fit  --config configs/cifar10_frozen_mlp.yaml --model.pretrained $CKPT \
    --runs_dir RUNS_ROOT/transfer_tinyimagenet --experiment cifar10_frozen_mlp_tinyimagenet
imgcls fit  --config configs/cifar10_frozen_mlp.yaml --runs_dir RUNS_ROOT/transfer_tinyimagenet \
    --experiment cifar10_frozen_mlp_random
imgcls test --config configs/cifar10_frozen_mlp.yaml --runs_dir RUNS_ROOT/transfer_tinyimagenet \
    --experiment EXPERIMENT --ckpt_path best
```
EOF

section fewshot_tinyimagenet "Few-shot EuroSAT from the Tiny ImageNet backbone beside random weights" <<'EOF'
`configs/fewshot/eurosat_5way5shot.yaml`: 600 seeded 5-way episodes with 15 queries per class from
EuroSAT's test split (5,400 images) at 64 px, scored on frozen features by prototypes and by a linear
probe; 95% CIs over the 600 episodes. The seed study reached about 64% 5-shot from miniImageNet; Guo
et al. (CD-FSL, 2020) report 73-79% 5-shot from miniImageNet ResNet-10 features. Fine-tuning on each
support set (`finetune`) was left out for the CPU's time.

| episodes (600, 95% CI) | Tiny ImageNet weights | random weights |
|---|---:|---:|
| 5-way 5-shot, prototypes | 76.31% +- 0.69 | 45.18% +- 0.69 |
| 5-way 5-shot, linear probe | **78.01% +- 0.69** | 45.88% +- 0.63 |
| 5-way 1-shot, prototypes | 60.28% +- 0.81 | 37.62% +- 0.71 |
| 5-way 1-shot, linear probe | **60.77% +- 0.81** | 37.35% +- 0.69 |

The 5-shot linear probe on the Tiny ImageNet features (78.0%) is within the 73-79% CD-FSL reports for
miniImageNet features and above the seed study's 64%; each study embedded the 5,400 images once and
scored its 600 episodes in under a second per method.

```bash
for k in 5 1; do
  imgcls fewshot --config configs/fewshot/eurosat_5way5shot.yaml --k_shot $k --methods "[prototypes, linear]" \
      --ckpt_path $CKPT --runs_dir RUNS_ROOT/fewshot_tinyimagenet --experiment eurosat_${k}shot_tinyimagenet
  imgcls fewshot --config configs/fewshot/eurosat_5way5shot.yaml --k_shot $k --methods "[prototypes, linear]" \
      --backbone torchvision/resnet18 --pretrained false --runs_dir RUNS_ROOT/fewshot_tinyimagenet \
      --experiment eurosat_${k}shot_random
done
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

section airbench_cpu "CIFAR-10 and EuroSAT on the 2-core CPU: airbench's recipe as configs" <<'EOF'
`configs/cifar10_airbench.yaml` and `configs/eurosat_airbench.yaml`: airbench's network
(`imgcls/airbench`), whitened first layer (`data_init`), Muon (timm), filter norms, label smoothing 0.2,
flip + translate augmentation, bf16-mixed, on a 2-core Intel Xeon with AVX512-BF16 and AMX (nothing else
running unless said).

```bash
imgcls fit  --config configs/eurosat_airbench.yaml
imgcls test --config configs/eurosat_airbench.yaml --ckpt_path best
```

EuroSAT on that AMX Xeon (bf16, before the two switches below): **98.13% test** (no test-time augmentation)
in 1,120 s of `fit_seconds` (1,143 s for the whole `fit` command, cache already built), against the 2,217 s
recorded for `configs/eurosat_resnet18_fast.yaml` on a Xeon of the same family *without* AVX512-BF16: a ratio
of two CPUs, 0.505x.

**EuroSAT side by side on a CPU without AMX** (the 2-core Xeon, family 6 model 207, of the CIFAR-10 runs
below; float32, since bf16 is the slower there; one run after the other, nothing else running, the split of
seed 0 for all). At 64 px airbench's network trains 66 images/s there (batches of 125, 4 per step; its
first block works on 63x63 maps), too slow for half of ResNet-18's time. Two switches of the config:
`model.backbone_kwargs.whiten_stride 2` lets the whitening layer tile the image with its 2x2 patches
instead of sliding over them, so every later layer runs on 32x32 maps (CIFAR-10's cost; 238 images/s in
the same probe) while the first layer still sees every pixel; `progressive_resizing` trains epochs 0-5 on
32 to 56 px (validation and test at 64 px).

| run | epochs | test acc | `fit` command | fit_seconds | vs ResNet-18 |
|---|---:|---:|---:|---:|---:|
| `configs/eurosat_resnet18_fast.yaml` | 15 | 95.98% | 1,696 s | 1,679 | 1 |
| `eurosat_airbench.yaml` with `whiten_stride 2`, no resizing | 10 | 97.76% | 848 s | 837 | 0.500x |
| `eurosat_airbench.yaml` (both switches) | 10 | 97.63% | 658 s | 647 | 0.388x |
| the same, `--seed_everything 1` | 10 | 97.56% | 605 s | 594 | 0.356x |
| the same, `--trainer.max_epochs 12` | 12 | **98.06%** | 793 s | 780 | 0.467x |

```bash
R="--runs_dir RUNS_ROOT/airbench_cpu"
imgcls fit  --config configs/eurosat_resnet18_fast.yaml $R
imgcls test --config configs/eurosat_resnet18_fast.yaml $R --ckpt_path best
imgcls fit  --config configs/eurosat_airbench.yaml $R --experiment eurosat_airbench_ws2_pr6
imgcls test --config configs/eurosat_airbench.yaml $R --experiment eurosat_airbench_ws2_pr6 --ckpt_path best
# no resizing: --progressive_resizing.start_scale null --experiment eurosat_airbench_ws2
# the others: --seed_everything 1 / --trainer.max_epochs 12 with their own --experiment
```

(The airbench runs set the two switches on the command line, `--model.backbone_kwargs "{whiten_stride: 2}"
--progressive_resizing.start_scale 0.5 --progressive_resizing.full_size_epoch 6`, before the config held
them; the commands above give the same settings with today's config.)

On the 2-core AMD EPYC with AVX512-BF16 of the CIFAR-10 runs below (bf16 for both, after the whitening fix
described there; one run after the other, nothing else running except a niced `imgcls compare`, 6 s of CPU,
during the airbench run's first epochs):

| run | epochs | test acc | `fit` command | fit_seconds | vs ResNet-18 |
|---|---:|---:|---:|---:|---:|
| `configs/eurosat_resnet18_fast.yaml` | 15 | 96.41% | 1,123 s | 1,106 | 1 |
| `eurosat_airbench.yaml` | 10 | **97.83%** | 433 s | 424 | 0.386x |
| the same after the global pool's change (`max`, not `amax`; see CIFAR-10 below), a later session | 10 | 97.87% | 423 s | 404 | 0.377x |

Epoch times wandered by up to a third at the same settings (73-99 s for the full-size epochs of the
stride-2 run), so each ratio carries some machine noise; the two seeds of the config average 97.60% in
0.37x the time. The rows of both CPUs are in the table at the end of this section.

CIFAR-10 (run folders of an earlier session, not on this machine now, so the rows are the figures it
printed; test set, 10,000 official images of `../shared/data/cifar10`):

| run | epochs | test acc | with TTA (`flip_translate`) | `fit` command |
|---|---:|---:|---:|---:|
| airbench94_muon (the peer's script, CPU port, bf16 autocast, not committed) | 8 | 89.89% | 90.95% | 538 s (496 s its own clock) |
| `cifar10_airbench.yaml`, 8 epochs | 8 | 88.98% | 90.37% | 488.5 s (a test run beside epochs 4-5) |
| `cifar10_airbench.yaml` | 10 | 89.25% | 90.62% | 559.5 s (`fit_seconds` 551.9) |
| `configs/base/recipe.yaml`, ResNet-18 (above) | 8 | 77.98% | | 990.6 s |

The switches, each off (or on) against the 8-epoch run (88.98%):

| switch | test acc (no TTA) | fit |
|---|---:|---:|
| `model.data_init 0` (no whitened first layer) | 88.17% | 454 s |
| `model.filter_norm false` | 87.93% | 452 s |
| `model.mixup_alpha 1.0` | 87.09% | 1,092 s (beside the test suite) |
| `model.cutmix_alpha 1.0` | 85.86% | 581 s (partly beside the test suite) |
| `data.init_args.alternate_flips true` (airbench's alternating flips, this machine alone) | 89.47% | 542 s (`fit_seconds`) |

One-epoch probes (validation accuracy on 1,000 images): head learning rate x1 0.546, x10 0.667 (the
config), x30 0.632, x100 0.533; Muon's `fallback_lr_scale` 0.01 0.651, 0.05 0.667 (the config), 0.25 0.592.
MixUp and CutMix cost accuracy at 8 epochs, as expected of regularisers on a run this short.
Alternating flips gained 0.49 points in one seed each, within what a second seed could move
(`imgcls fit --config configs/cifar10_airbench.yaml --trainer.max_epochs 8 --data.init_args.alternate_flips true`).

Those rows ran on the AMX Xeon in bf16, each step one batch of 2,000 and no alternating flips (the config of
then). **Side by side on a CPU without AMX**: a 2-core Intel Xeon (family 6 model 207) that lists
AVX512-BF16 but not AMX; bf16 is the slower there, so the peer ran in float32 and imgcls fell back to 32-true
itself. One run after the other, nothing else running. The config now steps on its 2,000 images as four
batches of 500 (`trainer.accumulate_grad_batches 4`: 284 against 210 training images/s in one batch of 2,000
on this CPU, see [speed](speed.md)) and alternates its flips.

| run | epochs | test acc | with TTA (`flip_translate`) | time |
|---|---:|---:|---:|---:|
| airbench94_muon (the peer's script, CPU port, float32, not committed) | 8 | 89.84% | 90.93% | 1,756 s (its `main`: training, a test pass per epoch, TTA); 1,633 s its own clock |
| `cifar10_airbench.yaml` at 10 epochs | 10 | 89.62% | 90.79% | 1,771 s (the whole `fit` command; `fit_seconds` 1,758) |
| `cifar10_airbench.yaml` (12 epochs) | 12 | 89.83% | 90.70% | 1,890 s (`fit_seconds` 1,877): 1.08x the peer |
| `cifar10_airbench.yaml` (12 epochs), `--seed_everything 1` (a later session, same CPU kind) | 12 | 90.01% | 90.81% | 2,108 s (`fit_seconds` 2,078): 1.20x the peer |

```bash
# the config had 12 epochs then (10 since): add --trainer.max_epochs 12 to repeat these
imgcls fit  --config configs/cifar10_airbench.yaml --experiment cifar10_airbench_b500x4_12ep
imgcls test --config configs/cifar10_airbench.yaml --experiment cifar10_airbench_b500x4_12ep --ckpt_path best
imgcls test --config configs/cifar10_airbench.yaml --experiment cifar10_airbench_b500x4_12ep --ckpt_path best \
    --model.test_time_augmentation flip_translate
# and the same with --trainer.max_epochs 10 --experiment cifar10_airbench_b500x4,
# and with --seed_everything 1 --experiment cifar10_airbench_b500x4_12ep_seed1
```

The two seeds of the 12-epoch config average 89.92% (90.76% with TTA) in 1,999 s, 1.14x the peer's one
run (its second seed was not run); the seed-1 run's epochs took 159-183 s where seed 0's took 127-182 s.

**Side by side on a 2-core AMD EPYC with native bf16** (family 25 model 17, AVX512-BF16, no AMX: the CPU
kind of the issue's 591 s). bf16 autocast for both, one run after the other, nothing else running, the
caches built before; matrix-multiply ceiling (2048x2048, both cores) 382-400 GFLOP/s bf16, 158-179 fp32
(two readings, by `python -m benchmarks.bench_time_to_accuracy`):

| run | epochs | test acc | with TTA (`flip_translate`) | time |
|---|---:|---:|---:|---:|
| airbench94_muon (the peer's script, CPU port, bf16 autocast, not committed) | 8 | 89.67% | 90.65% | 1,172 s (its `main` 1,167 s: training, a test pass per epoch, TTA); 1,091 s its own clock |
| `cifar10_airbench.yaml` (12 epochs), whitening from twice-normalised images (see below) | 12 | 90.19% | 90.96% | 1,320 s (the whole `fit` command; `fit_seconds` 1,308): 1.13x the peer |
| `cifar10_airbench.yaml` (12 epochs), whitening fixed, through the time-to-accuracy benchmark | 12 | 90.01% | 90.97% | 1,409 s (the benchmark's fit, test scoring taken off): 1.20x the peer; 90% first at epoch 12 |
| the same with blocks of 128/384/384 (`airbench_wide`), 10 epochs, whitening from twice-normalised images | 10 | 90.63% | 91.37% | 2,446 s (the benchmark's fit) |
| the same, whitening fixed, 15 epochs (airbench95's network and length), through the benchmark (a later session) | 15 | 90.92% | 91.81% | 3,929 s (the benchmark's fit); 90% first at epoch 13, 3,380 s |
| `cifar10_airbench.yaml` for 22 epochs (as many as fit 45 minutes), through the benchmark, same session | 22 | 90.28% | 91.39% | 2,503 s (the benchmark's fit); 90% first at epoch 21, 2,389 s |
| airbench94_muon, `SEED=1` (a later session, same CPU kind) | 8 | 89.94% | 91.00% | 1,067 s (its `main` 1,062 s); 993 s its own clock |
| `cifar10_airbench.yaml` at 10 epochs (the config since), same session | 10 | 89.79% | 90.63% | 1,081 s (`fit_seconds` 1,061): 0.92x the peer's seed 0 |
| the same, `--seed_everything 1` | 10 | 90.14% | 90.82% | 1,032 s (`fit_seconds` 1,022): 0.97x the peer's seed 1 |
| the config as committed (10 epochs, the global pool's `max` of below), seed 0 | 10 | 89.72% | 90.98% | 1,083 s (`fit_seconds` 1,071) |

```bash
imgcls fit  --config configs/cifar10_airbench.yaml --experiment cifar10_airbench_10ep
imgcls test --config configs/cifar10_airbench.yaml --experiment cifar10_airbench_10ep --ckpt_path best
imgcls test --config configs/cifar10_airbench.yaml --experiment cifar10_airbench_10ep --ckpt_path best \
    --model.test_time_augmentation flip_translate
# and the same with --seed_everything 1 --experiment cifar10_airbench_10ep_seed1, and after the pool's
# change below with --experiment cifar10_airbench_10ep_maxpool;
# with --trainer.max_epochs 12 --experiment cifar10_airbench_12ep (the config of then);
python -m benchmarks.bench_time_to_accuracy --root ../shared/data/cifar10 --cache-dir ~/.cache/imgcls \
    --runs-dir RUNS_ROOT --variants airbench -- --trainer.max_epochs=12
# and --variants airbench_wide -- --trainer.max_epochs=10, --variants airbench_wide -- --trainer.max_epochs=15
# and --variants airbench -- --trainer.max_epochs=22;
# where the time goes (one epoch cut to 24 batches):
imgcls fit --config configs/cifar10_airbench.yaml --trainer.max_epochs 1 --trainer.limit_train_batches 24 \
    --trainer.limit_val_batches 1 --trainer.profiler simple
```

**Goal 1 on this CPU, two seeds each**: the config at 10 epochs scored 89.97% on average (90.73% with
TTA) in 1,057 s of `fit` command; the peer 89.81% (90.83%) in 1,120 s: 0.94x its time, 0.16 points above
it without TTA and 0.10 below it with TTA, both inside what one seed moves (the peer's two seeds differ by
0.27 and 0.35 points). Against the issue's figures for the peer on this CPU kind (89.78%, 90.54% with
TTA), both of imgcls's means are higher. 90% without TTA is reached by one seed of two (90.14%). The
10-epoch runs trained 457-499 images/s (99-108 s per epoch); the peer's seed 1 took 120 s per epoch.

imgcls trained 440-470 images/s in the first run (105-114 s per epoch), 111-130 s per epoch in the second;
the peer 330-420 images/s (118-153 s per epoch, its first the slowest). On this CPU the peer's port took
twice the issue's 591 s for the same script: that port was not kept, so whether the ports or the CPUs
differ is not known; the ratio is what carries, and it is measured here side by side.

**Goal 2 (93% in 45 minutes) and the compute it takes.** airbench95's network and length (blocks of
128/384/384 for 15 epochs: 95.01% published on the original images, 1.39 PFLOPs), run as `airbench_wide`
for 15 epochs through the benchmark with Muon kept, scored 90.92% (91.81% with TTA) in 3,929 s of fit,
first above 90% at epoch 13 (3,380 s; 87.4% after epoch 10, the last to end inside 45 minutes): 92% was
not reached, with TTA or without. The committed config for 22 epochs, as many as fit 45 minutes, scored
90.28% (91.39% with TTA) in 2,503 s, first above 90% at epoch 21 (2,389 s): the same as the wide network's
10 epochs in about the same time (90.63%, 91.37%, 2,446 s), so longer and wider buy alike, and neither
reaches 92% inside 45 minutes. This copy cost airbench95's network 3.2 points against the published figure
(with TTA both), as it costs airbench94 (94.01% published, 90.81% the mean of imgcls's three 10-epoch runs
with TTA).
The recipe already computes near this CPU's matrix-multiply ceiling: `FlopCounterMode` counts 0.709 GFLOP
per training image for imgcls/airbench (forward and backward) and 1.809 for the wide one, so the 10-epoch
config computes 0.35 PFLOP in 1,061 s of fit (327 GFLOP/s) and the 15-epoch wide run 1.33 PFLOP in
3,913 s (340 GFLOP/s): 82% and 86% of the 397 GFLOP/s bf16 ceiling the benchmark measured before the wide
run (the 22-epoch run, as the benchmark now prints it: 0.764 PFLOP in 2,498 s, 306 GFLOP/s, 79% of the 387
it measured before that run). Lightning's simple profiler over 24 training batches of 500 (one epoch cut short, same CPU, alone)
puts 68% of the batches' time in the backward pass, 31% in the forward pass, about 0.6% in Muon's steps
and under 0.3% in moving and augmenting the batches. Forty-five minutes at the ceiling hold 1.07 PFLOP,
less than airbench95's 1.39. At 3.2 points' cost, 93% here asks for 96.2% on the original images, the
ground of airbench96 (96.00% at 3.1 PFLOPs in its faster version, 96.05% at 7.5): 2.9-7x what two cores
compute in 45 minutes. Goal 2 is out of reach on this CPU for want of compute, not of speed in the
framework; the benchmark now prints each fit's GFLOP/s and its share of the ceiling.

Until this session the whitening layer was set from training images normalised twice and augmented:
`data_init` moved them to the device with the strategy's `batch_to_device`, which also runs the
datamodule's `on_after_batch_transfer` (at the start of `fit`, a training batch: shifted, flipped,
normalised), and then normalised them again (mean -2.5, std 4.3 where 0 and 1 were meant). Every
airbench figure above this paragraph, CIFAR-10 and EuroSAT, was measured so. Fixed, the same 12-epoch
config scored 90.01% (90.97% with TTA) where it had scored 90.19% (90.96%): one seed each, no gain to
report. The same slip made the time-to-accuracy benchmark score each epoch on twice-normalised test
images (37% where the test said 91%); its test now checks its last score against `imgcls test`.

**`model.compile true`** (torch.compile of the forward pass; its effect on this recipe, same CPU, alone, 3
epochs of 20,000 images each): it trained NaN from its first step at first, and early stopping ended the
fit after one epoch without a word. Cause: inductor's backward of `amax` in bf16 gives NaN gradients
(pytorch/pytorch#186799); imgcls/airbench's global pool now takes `max(...).values` (the same forward;
compiled in bf16, its gradient is float32's to a cosine of 0.9998), and `fit` prints why early stopping
ended a run. Compiled, it then learned as eager did (validation 75.4% against 74.9% after the 3 epochs)
but trained 378-384 images/s against eager's 469-476 (0.81x) and spent 20 s more in its first epoch
compiling: the switch stays off on this CPU. The 10-epoch runs above ran with `amax` (eager), before that
change; the change moves gradients only where two positions tie for the maximum. Run again after it
(row "the config as committed" above, seed 0): 89.72% (90.98% with TTA) in 1,083 s, against 89.79%
(90.63%) in 1,081 s before. With it, imgcls's three 10-epoch runs average 89.88% (90.81%) in 1,065 s:
0.95x the peer's mean.

One seed each where no second is named. The table below is `imgcls compare` over the run folders of the three CPUs (spliced by hand: each
CPU's folders were on its own machine). The benchmark's runs (`time_to_accuracy_*`) count its test scoring
in `fit_seconds` (1,485, 2,580, 4,137 and 2,634 s, against the 1,409, 2,446, 3,929 and 2,503 s of fit it
reports).
EOF

notes "The 64 px study: why AlexNet and VGG-16 did not train" <<'EOF'
Measured, not guessed: each model on 1,000 Fashion-MNIST images per class (9,000 train) at 64 px, batch
128, bf16 autocast, with `imgcls.callbacks.TrainingHealth` logging every second step the loss, the norm of
all gradients and the share of the head's input features that are zero for the whole batch (dead ReLUs);
validation on 256 images every 20 steps. Loss / gradient norm / dead share at three steps, and validation
accuracy at steps 20 / 40 / 60:

| run | after step 1 | step 5 | last step | val acc | verdict |
|---|---|---|---|---|---|
| VGG-16, Adam 1e-3 (the study's) | 264 / 3,020 / 15% | 2.30 / 0.14 / 50% | 2.28 / 0.82 / 65% (step 39) | never validated | the first step blows the logits up, then the features die and the loss sits at ln(10) = 2.30 |
| VGG-16, Adam 1e-4 | 2.39 / 2.87 / 2% | 2.30 / 0.83 / 4% | 1.42 / 14.0 / 5% (step 39) | 37.1% / 66.4% | learns |
| VGG-16 with batch-norm (`vgg16_bn`), Adam 1e-3 | 79.8 / 635 / 16% | 20.6 / 206 / 45% | 2.11 / 3.18 / 5% (step 39) | 10.5% / 19.9% | recovers, slowly: batch-norm is in the convolutions, not in the 25088x4096 layer |
| AlexNet, Adam 1e-3 (the study's) | 4.71 / 26.1 / 10% | 2.30 / 0.26 / 50% | 1.25 / 9.43 / 44% (step 79) | 25.8% / 43.4% / 51.6% | half its features dead; learns, too slowly for the old grid's 44 steps |
| AlexNet, Adam 1e-4 | 2.31 / 0.19 / 1% | 2.31 / 0.27 / 1% | 1.08 / 9.36 / 7% (step 79) | 38.7% / 54.7% / 66.8% | learns |
| ResNet-34 (LeakyReLU), Adam 1e-3 | 2.61 / 19.8 / 0% | 1.38 / 6.31 / 0% | 0.80 / 3.00 / 0% (step 39) | 57.0% / 71.5% | learns (a LeakyReLU is never exactly zero: 0% dead by construction) |

Adam's first update moves every weight by about the learning rate, whatever its gradient's size: the
102.8M weights of VGG-16's 25088x4096 layer move by 1e-3 each at once, which at 64 px (a 2x2 map
average-pooled up to 7x7) throws the logits so far that the loss jumps from 2.3 to 264. The study's fix in the configs: Adam at
1e-4 for AlexNet and VGG-16 (`configs/base/cnn64_model.yaml`, the model pieces), 1e-3 kept for
ResNet-34; everything else as the study chose. The first grid ran 44 steps per model (2 epochs of 2,700
images), which also left AlexNet short of steps.

```bash
D="--config configs/cnn64_fashion_mnist.yaml --data.init_args.max_per_class 1000 --trainer.log_every_n_steps 2 \
   --trainer.limit_val_batches 2 --trainer.val_check_interval 20 --trainer.precision bf16-mixed \
   --trainer.callbacks+=imgcls.callbacks.TrainingHealth --runs_dir RUNS_ROOT/cnn64_diagnosis"
imgcls fit $D --trainer.max_steps 40 --model configs/base/models/vgg16.yaml --model.optimizer.init_args.lr 1e-3 --experiment vgg16_adam1e-3
imgcls fit $D --trainer.max_steps 40 --model configs/base/models/vgg16.yaml --experiment vgg16_adam1e-4
imgcls fit $D --trainer.max_steps 40 --model configs/base/models/vgg16.yaml --model.backbone torchvision/vgg16_bn \
    --model.optimizer.init_args.lr 1e-3 --experiment vgg16_bn_adam1e-3
imgcls fit $D --trainer.max_steps 80 --model.optimizer.init_args.lr 1e-3 --experiment alexnet_adam1e-3
imgcls fit $D --trainer.max_steps 80 --experiment alexnet_adam1e-4
imgcls fit $D --trainer.max_steps 40 --model configs/base/models/resnet34_leaky_relu.yaml --experiment resnet34_adam1e-3
```

(The runs predate the lr in the configs: then 1e-3 was the default and the 1e-4 runs passed it on the
command line; the commands above give the same settings with today's configs. The VGG-16 1e-3 run never
validated: it ran without `--trainer.val_check_interval`, which imgcls now asks for when `max_steps` ends
before the first validation.)
EOF

section cnn64_full "The 64 px study on the full training sets" <<'EOF'
The study's grid (MNIST, Fashion-MNIST, CIFAR-10 x AlexNet, VGG-16, ResNet-34 with LeakyReLU; Adam,
batch 128, ReduceLROnPlateau and early stopping on val_loss, 10% validation) after the fix of the
section above, on the **full training sets** (54,000 train and 6,000 validation images for MNIST and
Fashion-MNIST, 45,000 and 5,000 for CIFAR-10; the official 10,000 test images), in float32 as the
configs have it (bf16 was the slower on this CPU: [benchmarks](../benchmarks/README.md#precision-on-cpus)),
on a 2-core Xeon (family 6 model 207, AVX512-BF16, AMX not listed), one run at a time. The budget per
row, what one session's CPU time allowed where the study trained up to 100 epochs: **one epoch for
AlexNet and ResNet-34** (422 steps, 352 for CIFAR-10), **100 steps for VGG-16** (12,800 images of the
shuffled training set, a quarter of an epoch; validation on 2,560 images; 25 training images per
second here, 36 minutes per epoch), and on Fashion-MNIST, where VGG-16 is the study's best model, one
whole epoch of VGG-16 as well (`version_1`). Every row has learned (chance is 10%; before the fix
AlexNet and VGG-16 stayed at 10-22%); one epoch is far from the study's 99.58 / 93.46 / 89.28%.

```bash
for m in alexnet:1.0 resnet34_leaky_relu:1.0 vgg16:100; do
  for dataset in mnist fashion_mnist cifar10; do
    args="--config configs/cnn64_$dataset.yaml --model configs/base/models/${m%%:*}.yaml \
      --runs_dir RUNS_ROOT/cnn64_full --experiment data=${dataset}_64,model=${m%%:*}"
    limits="--trainer.limit_train_batches ${m##*:}"
    [ "${m%%:*}" = vgg16 ] && limits="$limits --trainer.limit_val_batches 20"
    imgcls fit $args --trainer.max_epochs 1 $limits && imgcls test $args --ckpt_path best
  done
done
# VGG-16, one whole epoch of Fashion-MNIST (version_1)
args="--config configs/cnn64_fashion_mnist.yaml --model configs/base/models/vgg16.yaml \
  --runs_dir RUNS_ROOT/cnn64_full --experiment data=fashion_mnist_64,model=vgg16"
imgcls fit $args --trainer.max_epochs 1 && imgcls test $args --ckpt_path best
```
EOF

section cnn64 "The 64 px study on 600 images per class" <<'EOF'
The study's grid (MNIST, Fashion-MNIST, CIFAR-10 x AlexNet, VGG-16, ResNet-34 with LeakyReLU; Adam,
batch 128, ReduceLROnPlateau and early stopping on val_loss) after the fix of the diagnosis above (Adam
at 1e-4 for AlexNet and VGG-16), the first grid after it, on the Xeon with AMX of the earlier sections,
with the budget the 2-core CPU had left in that session: **600 images per class** (5,400 train, 600
validation, 6,000 test) and **4 epochs for AlexNet, 3 for ResNet-34, 1 for VGG-16** (2.7 GFLOPs per
image forward, 30 images per second in training there), bf16 autocast, where the
study trained up to 100 epochs on 54,000 (45,000 for CIFAR-10). Every row now learns (the grid before
the fix: AlexNet 12-22%, VGG-16 10-15%, chance 10%); the rows are far below the study's figures because
they are 1-4 epochs on a tenth of the data, VGG-16's a single epoch of 42 steps.

```bash
for m in alexnet:4 resnet34_leaky_relu:3 vgg16:1; do
  for dataset in mnist fashion_mnist cifar10; do
    args="--config configs/cnn64_$dataset.yaml --model configs/base/models/${m%%:*}.yaml \
      --data.init_args.max_per_class 600 --trainer.precision bf16-mixed --runs_dir RUNS_ROOT/cnn64 \
      --experiment data=${dataset}_64,model=${m%%:*}"
    imgcls fit $args --trainer.max_epochs ${m##*:} && imgcls test $args --ckpt_path best
  done
done
```
EOF

section defaults "Defaults that transfer: configs/base/recipe.yaml against a plain loop (CPU)" <<'EOF'
ResNet-18 from scratch at 64 px, 5 epochs, batch 128, on 1,000 images per class of the training set
(9,000 train, 1,000 validation) and up to 1,000 per class of the official test set, on the 2-core Xeon;
the benchmark runs both sides one after the other, alone on the machine, on the same images. The plain
loop writes no run folder, so its figures are in the `study` column and here. The recipe as it stands
(torchvision's ResNet-18), on two datasets nothing was tuned on and on CIFAR-10:

| dataset | plain loop | imgcls | wall time plain / imgcls |
|---|---:|---:|---:|
| Fashion-MNIST (`defaults_fashion_mnist_max1000`) | 0.8682 | 0.8847 | 358 s / 500 s |
| MNIST (`defaults_mnist_max1000`, 9,786 test images) | 0.9804 | 0.9860 | 366 s / 380 s |
| CIFAR-10 (`defaults_cifar10_max1000`) | 0.6490 | 0.6596 | 381 s / 462 s |

The main config, `configs/eurosat_resnet50.yaml`, now carries these defaults (it trained SGD with
ReduceLROnPlateau before, and tested 9 points below such a loop on an untuned 6-class folder). Checked the
same way with only its data swapped and ResNet-18 for ResNet-50 (`--config configs/eurosat_resnet50.yaml
--backbone torchvision/resnet18`, the imgcls side alone, `--variant imgcls`: the plain loop's figures are
the rows above, on the same images and CPU): **Fashion-MNIST 0.8856** against the loop's 0.8682 (252 s),
**MNIST 0.9853** against 0.9804 (226 s), runs `eurosat_resnet50_fashion_mnist_max1000` and
`eurosat_resnet50_mnist_max1000`. Its early stopping (patience 10) does not act within 5 epochs.

imgcls's wall time covers its per-epoch validation, the weight average's batch-norm pass and the test
reports, which the loop does not do. The `_timm` rows are the same check with timm's ResNet-18, the
recipe's backbone before: Fashion-MNIST plain 0.8682 in 375 s against imgcls 0.8671 in 437 s, CIFAR-10
plain 0.6490 in 387 s against imgcls 0.6165 in 510 s. `defaults_cifar10_max1000_noema` is the CIFAR-10
run with timm's ResNet-18 and the weight average off (0.6156): the average was not the gap; torchvision's
ResNet-18 in place of timm's closed it, a choice made on CIFAR-10, which is why Fashion-MNIST and MNIST
are the check that counts:

```bash
python -m benchmarks.bench_defaults_transfer --dataset fashion_mnist --root ../shared/data/fashion_mnist/raw \
    --max-per-class 1000 --runs-dir RUNS_ROOT/defaults
python -m benchmarks.bench_defaults_transfer --dataset mnist --root ../shared/data/mnist/raw \
    --max-per-class 1000 --runs-dir RUNS_ROOT/defaults
python -m benchmarks.bench_defaults_transfer --dataset cifar10 --root ../shared/data/cifar10 \
    --max-per-class 1000 --runs-dir RUNS_ROOT/defaults
# the _timm rows: the first and last commands at commit 2b19d84 (recipe.yaml's backbone then: resnet18),
# their folders renamed from defaults_<dataset>_max1000 to defaults_<dataset>_max1000_timm afterwards
imgcls fit --config configs/base/recipe.yaml --data configs/base/data/cifar10_64.yaml \
    --data.init_args.max_per_class 1000 --trainer.max_epochs 5 --model.backbone resnet18 --ema.decay null \
    --experiment defaults_cifar10_max1000_noema
for dataset in fashion_mnist mnist; do   # the main config, its data swapped
  python -m benchmarks.bench_defaults_transfer --variant imgcls --dataset $dataset \
      --root ../shared/data/$dataset/raw --max-per-class 1000 --config configs/eurosat_resnet50.yaml \
      --backbone torchvision/resnet18 --runs-dir RUNS_ROOT/defaults
done
```
EOF

echo "wrote $OUT"
