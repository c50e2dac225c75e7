//! `pagerbridge completions SHELL` and `pagerbridge man`: shell completions and manual pages
//! generated from the command line's own definition, so they never drift from it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap_complete::Shell;
use clap_mangen::Man;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  pagerbridge completions bash > /etc/bash_completion.d/pagerbridge
  pagerbridge completions zsh > \"${fpath[1]}/_pagerbridge\"
  pagerbridge completions fish > ~/.config/fish/completions/pagerbridge.fish")]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  pagerbridge man | man -l -
  pagerbridge man --out-dir /usr/local/share/man/man1   # pagerbridge.1, pagerbridge-incident-list.1, ...")]
pub struct ManArgs {
    /// Write one page per command and subcommand into this directory (`pagerbridge.1`,
    /// `pagerbridge-incident.1`, `pagerbridge-incident-list.1`, ...) and print their paths.
    /// Without it: the main page on standard output.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs, mut cmd: clap::Command) -> ExitCode {
    let name = cmd.get_name().to_owned();
    clap_complete::generate(args.shell, &mut cmd, name, &mut std::io::stdout());
    ExitCode::SUCCESS
}

pub fn man(args: ManArgs, cmd: clap::Command) -> ExitCode {
    let result = match &args.out_dir {
        None => Man::new(cmd).render(&mut std::io::stdout()),
        Some(dir) => write_pages(cmd, dir).map(|paths| {
            for p in paths {
                println!("{}", p.display());
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let place = args
                .out_dir
                .map(|d| format!(" to {}", d.display()))
                .unwrap_or_default();
            eprintln!("pagerbridge: cannot write the manual pages{place}: {e}");
            ExitCode::from(3)
        }
    }
}

/// Every visible command's page, named by its path (`pagerbridge-incident-list.1`).
fn write_pages(cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    fn walk(cmd: clap::Command, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        out.push(Man::new(cmd.clone()).generate_to(dir)?);
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub.clone(), dir, out)?;
        }
        Ok(())
    }
    std::fs::create_dir_all(dir)?;
    // Built once, so that subcommands carry their full names (`pagerbridge-incident-list`).
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(cmd, dir, &mut out)?;
    Ok(out)
}
