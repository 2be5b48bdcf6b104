#!/usr/bin/env bash
# The LODO step of this tree against the step of another commit, in one run, alternating
# (issue 17: "the Random path in cache timed against the binary of commit 48fb174").
#
#   lodo-bench/scripts/step-vs-commit.sh [REV=48fb174] [ROUNDS=15]
#
# Builds one tiny program twice, against this tree's lodo-core and against REV's (a git worktree
# in target/step-vs/REV), in release with the workspace's profile. Each run is one process that
# times `Lodo::step` at the defaults (`Random` permutations, the full state, the best kernel path)
# for a fixed number of steps after 20 warm-up steps and prints the thread's CPU time per step
# in ns (Linux: /proc/thread-self/schedstat, so time-slicing by other processes does not count;
# memory stalls do); the script alternates
# old/new for ROUNDS rounds per case and prints each side's median and their ratio. With
# CALLGRIND=1 it also counts instructions per step (valgrind; repeatable on a loaded machine).
# On a shared machine read the ratio of medians, with the load printed.
set -euo pipefail
cd "$(dirname "$0")/../.."
rev=${1:-48fb174}; rounds=${2:-15}
root=$PWD; dir=$root/target/step-vs
old=$dir/tree-$rev
[ -d "$old" ] || git worktree add --detach "$old" "$rev" >/dev/null
mkdir -p "$dir/prog/src"
cat > "$dir/prog/src/main.rs" <<'RS'
use lodo_core::{Lodo, LodoConfig};
/// This thread's CPU time in seconds (Linux `schedstat`): time-slicing by other processes on a
/// shared machine does not count, memory stalls do.
fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse::<f64>().unwrap() * 1e-9
}
fn run<T: lodo_core::Real>(n: usize, steps: usize) -> f64 {
    let config = LodoConfig::<T>::default().with_alpha0(T::from(1e-3).unwrap()).unwrap();
    let mut lodo = Lodo::<T>::new(n, config, 1).unwrap();
    let mut x = vec![T::zero(); n];
    let mut g = vec![T::zero(); n];
    let mut go = |lodo: &mut Lodo<T>, x: &mut Vec<T>, s: usize| {
        for _ in 0..s {
            for (i, (gi, xi)) in g.iter_mut().zip(x.iter()).enumerate() {
                *gi = *xi - T::from((i % 7) as f64 - 3.0).unwrap();
            }
            lodo.step(std::hint::black_box(x), std::hint::black_box(&g)).unwrap();
        }
    };
    go(&mut lodo, &mut x, 20);
    let t = cpu();
    go(&mut lodo, &mut x, steps);
    (cpu() - t) * 1e9 / steps as f64
}
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (float, n, steps): (&str, usize, usize) = (&a[1], a[2].parse().unwrap(), a[3].parse().unwrap());
    let ns = if float == "f64" { run::<f64>(n, steps) } else { run::<f32>(n, steps) };
    println!("{ns:.0}");
}
RS
build() { # $1 = name, $2 = lodo-core path
  local p=$dir/prog-$1
  mkdir -p "$p/src"; cp "$dir/prog/src/main.rs" "$p/src/"
  cat > "$p/Cargo.toml" <<TOML
[package]
name = "step-$1"
version = "0.0.0"
edition = "2024"
[dependencies]
lodo-core = { path = "$2/lodo-core" }
[profile.release]
debug = 1
[workspace]
TOML
  (cd "$p" && CARGO_TARGET_DIR=$dir/target-$1 cargo build --release -q)
  echo "$dir/target-$1/release/step-$1"
}
OLD=$(build old "$old"); NEW=$(build new "$root")
echo "# Lodo::step, defaults (Random, full state), best kernel path; old = $rev, new = $(git rev-parse --short HEAD)"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg); $rounds alternating rounds per case"
echo "| float | n | steps per run | old median CPU ns/step | new median CPU ns/step | new / old |"
echo "|---|---|---|---|---|---|"
med() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for float in f32 f64; do
  for n in 1000 10000; do
    steps=$((4000000 / n))
    o=(); w=()
    for _ in $(seq "$rounds"); do o+=("$($OLD $float $n $steps)"); w+=("$($NEW $float $n $steps)"); done
    mo=$(printf '%s\n' "${o[@]}" | med); mw=$(printf '%s\n' "${w[@]}" | med)
    echo "| $float | $n | $steps | $mo | $mw | $(awk -v a="$mw" -v b="$mo" 'BEGIN{printf "%.3f", a/b}') |"
  done
done
if [ "${CALLGRIND:-0}" = 1 ]; then
  echo "| float | n | old instructions/step | new instructions/step | new / old |"
  echo "|---|---|---|---|---|"
  ir() { # instructions of $steps steps minus those of 0 steps (setup and warm-up), per step
    local a b
    a=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" "$2" "$3" "$4" 2>&1 | awk '/Collected/{print $4}')
    b=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" "$2" "$3" 0 2>&1 | awk '/Collected/{print $4}')
    echo $(( (a - b) / $4 ))
  }
  for float in f32 f64; do
    for n in 1000 10000; do
      steps=$((200000 / n))
      io=$(ir "$OLD" $float $n $steps); iw=$(ir "$NEW" $float $n $steps)
      echo "| $float | $n | $io | $iw | $(awk -v a="$iw" -v b="$io" 'BEGIN{printf "%.3f", a/b}') |"
    done
  done
fi
