//! Percentiles and CPU accounting.

use std::time::Duration;

/// The `p`-th percentile (0 < p <= 100) of sorted samples, nearest-rank: the smallest sample
/// that at least `p` percent of the samples are less than or equal to.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Latencies in microseconds, summarised.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub count: usize,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Latency {
    pub fn of(mut micros: Vec<u64>) -> Latency {
        micros.sort_unstable();
        Latency {
            count: micros.len(),
            p50: percentile(&micros, 50.0).unwrap_or(0),
            p90: percentile(&micros, 90.0).unwrap_or(0),
            p99: percentile(&micros, 99.0).unwrap_or(0),
            max: micros.last().copied().unwrap_or(0),
        }
    }
}

/// Milliseconds with two decimals, from microseconds.
pub fn ms(micros: u64) -> String {
    format!("{:.2} ms", micros as f64 / 1000.0)
}

/// CPU time (user + system) a process used so far, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// utime + stime of a `/proc/.../stat` line.
fn stat_cpu(stat: &str) -> Option<Duration> {
    // The command name (field 2) may hold spaces; the fields after its closing ')' are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of the whole line are 11 and 12 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Some(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// CPU time used so far by each thread of a process, added up by thread name
/// (`tokio-rt-worker`, `sqlx-sqlite-wor`...).
pub fn thread_cpu(pid: u32) -> Vec<(String, Duration)> {
    let mut out: Vec<(String, Duration)> = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in dir.flatten() {
        let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let name = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let Some(used) = task_cpu_time(pid, tid) else {
            continue;
        };
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some(e) => e.1 += used,
            None => out.push((name, used)),
        }
    }
    out
}

fn task_cpu_time(pid: u32, tid: u32) -> Option<Duration> {
    stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?)
}

/// Per thread name, CPU use between two [`thread_cpu`] readings over `wall`, % of one core.
pub fn thread_percent(
    before: &[(String, Duration)],
    after: &[(String, Duration)],
    wall: Duration,
) -> Vec<(String, f64)> {
    after
        .iter()
        .map(|(n, a)| {
            let b = before
                .iter()
                .find(|(m, _)| m == n)
                .map(|x| x.1)
                .unwrap_or_default();
            (
                n.clone(),
                a.saturating_sub(b).as_secs_f64() * 100.0 / wall.as_secs_f64().max(1e-9),
            )
        })
        .filter(|(_, p)| *p >= 0.5)
        .collect()
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU use of a process over an interval, as a share of one core ("150%" = one and a half).
pub struct CpuWatch {
    pid: u32,
    start: Option<Duration>,
    at: std::time::Instant,
}

impl CpuWatch {
    pub fn start(pid: u32) -> CpuWatch {
        CpuWatch {
            pid,
            start: cpu_time(pid),
            at: std::time::Instant::now(),
        }
    }

    /// Percent of one core since `start`.
    pub fn percent(&self) -> Option<f64> {
        let used = cpu_time(self.pid)?.checked_sub(self.start?)?;
        let wall = self.at.elapsed().as_secs_f64();
        (wall > 0.0).then(|| used.as_secs_f64() * 100.0 / wall)
    }
}

/// CPU use of the whole machine over an interval, from `/proc/stat`.
pub struct SystemCpu {
    busy: u64,
    total: u64,
}

fn system_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    // idle + iowait
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

impl SystemCpu {
    pub fn start() -> SystemCpu {
        let (busy, total) = system_ticks().unwrap_or_default();
        SystemCpu { busy, total }
    }

    /// Busy time since `start`, in percent of one core (200% = both cores of two).
    pub fn busy_percent(&self) -> Option<f64> {
        let (busy, total) = system_ticks()?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f64;
        let dt = total.checked_sub(self.total)? as f64;
        (dt > 0.0).then(|| (busy.saturating_sub(self.busy)) as f64 * 100.0 * cores / dt)
    }
}

/// Waits until the machine is at least `min_idle` percent idle over 3 s (other people's
/// builds and tests share it), for at most `max_wait`. Returns the idle share last seen.
pub async fn wait_quiet(min_idle: f64, max_wait: Duration) -> f64 {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let until = std::time::Instant::now() + max_wait;
    loop {
        let s = SystemCpu::start();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let idle = 100.0 - s.busy_percent().unwrap_or(0.0) / cores;
        if idle >= min_idle || std::time::Instant::now() >= until {
            return idle;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.1), Some(1));
        let empty: Vec<u64> = Vec::new();
        assert_eq!(percentile(&empty, 50.0), None);
        assert_eq!(percentile(&[7u64], 99.0), Some(7));
        assert_eq!(percentile(&[1u64, 2, 3, 4], 50.0), Some(2));
        assert_eq!(
            percentile(&[1u64, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90.0),
            Some(9)
        );
    }

    #[test]
    fn latency_summary_sorts_its_input() {
        let l = Latency::of(vec![5, 1, 4, 2, 3]);
        assert_eq!((l.count, l.p50, l.p99, l.max), (5, 3, 5, 5));
    }

    #[test]
    fn reads_this_process() {
        assert!(memory_kib(std::process::id()).is_some_and(|(rss, hwm)| rss > 0 && hwm >= rss));
        assert!(cpu_time(std::process::id()).is_some());
    }
}
