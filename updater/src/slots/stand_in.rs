//! A stand-in for /sys and /dev, for tests of the GPT lookup: disks and their partitions as the
//! kernel lists them (/sys/class/block, uevent, /sys/dev/block), and a file per partition in the
//! stand-in /dev. Compiled for tests and with the `test-support` feature.
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use crate::config::BlockDevices;

/// `disks`: each disk's name and its partitions (number, GPT name). The stand-in /dev gets a
/// file per partition holding "<label> on <disk>"; disk files are left to the caller.
pub fn create(root: &Path, disks: &[(&str, &[(u32, &str)])]) -> BlockDevices {
    let sys = root.join("sys");
    let dev = root.join("dev");
    fs::create_dir_all(sys.join("class/block")).expect("stand-in /sys");
    fs::create_dir_all(&dev).expect("stand-in /dev");
    for (disk, partitions) in disks {
        let disk_dir = sys.join("devices/virtual/block").join(disk);
        fs::create_dir_all(&disk_dir).expect("stand-in disk");
        fs::write(
            disk_dir.join("uevent"),
            format!("DEVNAME={disk}\nDEVTYPE=disk\n"),
        )
        .expect("stand-in uevent");
        symlink(&disk_dir, sys.join("class/block").join(disk)).expect("stand-in link");
        for (n, label) in *partitions {
            let name = format!("{disk}{n}");
            let part = disk_dir.join(&name);
            fs::create_dir_all(&part).expect("stand-in partition");
            fs::write(part.join("partition"), format!("{n}\n")).expect("stand-in partition");
            fs::write(
                part.join("uevent"),
                format!("DEVNAME={name}\nDEVTYPE=partition\nPARTN={n}\nPARTNAME={label}\n"),
            )
            .expect("stand-in uevent");
            symlink(&part, sys.join("class/block").join(&name)).expect("stand-in link");
            fs::write(dev.join(&name), format!("{label} on {disk}")).expect("stand-in device");
        }
    }
    BlockDevices {
        sysfs: sys,
        dev,
        root: "/".into(),
    }
}

/// Makes the stand-in say that the running root (this machine's `/`) is on `partition`, as the
/// kernel says it in /sys/dev/block.
pub fn root_on(devices: &BlockDevices, partition: &str) {
    let st = nix::sys::stat::stat("/").expect("stat /");
    #[allow(clippy::unnecessary_cast)] // dev_t is u64 here, not everywhere
    let dev = st.st_dev as u64;
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let block = devices.sysfs.join("dev/block");
    fs::create_dir_all(&block).expect("stand-in /sys/dev/block");
    let target = fs::canonicalize(devices.sysfs.join("class/block").join(partition))
        .expect("a stand-in partition");
    symlink(target, block.join(format!("{major}:{minor}"))).expect("stand-in link");
}
