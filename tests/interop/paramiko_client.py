import errno, os, stat, sys
import paramiko

# paramiko's SFTPClient through a real SSH connection: arguments host port user key
# known_hosts remote-dir local-dir. The caller made remote/down.bin and local/up.bin,
# and checks their copies; this checks the rest against the disk, which it shares with
# the server, and prints the errors whose text differs between servers. paramiko has
# no statvfs (asyncssh_client.py covers the extension).
host, port, user, key, known_hosts, remote, local = sys.argv[1:8]
client = paramiko.SSHClient()
client.load_host_keys(known_hosts)
client.set_missing_host_key_policy(paramiko.RejectPolicy())
client.connect(host, int(port), username=user, key_filename=key, allow_agent=False,
               look_for_keys=False, timeout=20, banner_timeout=20, auth_timeout=20)
sftp = client.open_sftp()
sftp.get_channel().settimeout(30)

def r(name): return os.path.join(remote, name)
def l(name): return os.path.join(local, name)
def disk(path):
    with open(path, "rb") as f: return f.read()
def fails(fn, *args):
    try:
        fn(*args)
    except IOError as e:
        return e
    raise AssertionError(f"{fn.__name__}{args} should have failed")

sftp.chdir(remote)
assert sftp.getcwd() == remote, sftp.getcwd()
assert sftp.normalize("./.") == remote
assert sftp.normalize("not-yet") == r("not-yet")

# put and get, content checked by the caller; both pipeline their requests.
attrs = sftp.put(l("up.bin"), "up.bin")
assert attrs.st_size == os.path.getsize(l("up.bin")), attrs
sftp.get("down.bin", l("down.bin"))

# Reads: prefetch (many READs in flight), seeks, readv.
data = disk(r("down.bin"))
with sftp.open("down.bin", "rb") as f:
    f.prefetch()
    assert f.read() == data
with sftp.open("down.bin", "rb") as f:
    f.seek(len(data) - 1000)
    assert f.read(5000) == data[-1000:]
    f.seek(12345)
    assert f.read(100) == data[12345:12445]
    assert f.tell() == 12445
    ranges = [(0, 10), (70000, 40000), (len(data) - 7, 7)]
    assert list(f.readv(ranges)) == [data[o:o + n] for o, n in ranges]
    f.seek(0, 2)
    assert f.read(10) == b""

# Writes: pipelined, then rewritten in place at an offset, then appended.
chunk = bytes(range(256)) * 129
with sftp.open("w.bin", "wb") as f:
    f.set_pipelined(True)
    for _ in range(50):
        f.write(chunk)
with sftp.open("w.bin", "r+b") as f:
    f.seek(1000)
    f.write(b"X" * 10)
with sftp.open("w.bin", "ab") as f:
    f.write(b"tail")
want = bytearray(chunk * 50); want[1000:1010] = b"X" * 10; want += b"tail"
assert disk(r("w.bin")) == want
assert sftp.stat("w.bin").st_size == len(want)
e = fails(sftp.open, "w.bin", "x")
print("open-excl-existing", type(e).__name__, e)

# Names and attributes.
sftp.mkdir("d", 0o750)
assert stat.S_IMODE(os.stat(r("d")).st_mode) == 0o750
sftp.symlink("../w.bin", "d/link")
assert os.readlink(r("d/link")) == "../w.bin"
assert sftp.readlink("d/link") == "../w.bin"
assert stat.S_ISLNK(sftp.lstat("d/link").st_mode)
assert stat.S_ISREG(sftp.stat("d/link").st_mode)
assert sftp.stat("d/link").st_size == len(want)
sftp.chmod("w.bin", 0o604)
sftp.truncate("w.bin", 4096)
sftp.utime("w.bin", (1_000_000_000, 1_234_567_890))
st = os.stat(r("w.bin"))
assert (stat.S_IMODE(st.st_mode), st.st_atime, st.st_mtime, st.st_size) == (0o604, 1_000_000_000, 1_234_567_890, 4096), st
a = sftp.stat("w.bin")
assert (stat.S_IMODE(a.st_mode), a.st_atime, a.st_mtime, a.st_size, a.st_uid, a.st_gid) == (0o604, 1_000_000_000, 1_234_567_890, 4096, st.st_uid, st.st_gid), a
with sftp.open("w.bin", "r+") as f:
    f.chmod(0o640)
    f.truncate(100)
    assert f.stat().st_size == 100
assert stat.S_IMODE(os.stat(r("w.bin")).st_mode) == 0o640

listing = {a.filename: a for a in sftp.listdir_attr(".")}
names = sorted(os.listdir(remote))
assert sorted(listing) == names, (sorted(listing), names)
for name, a in listing.items():
    st = os.lstat(r(name))
    assert (a.st_mode, a.st_size, a.st_mtime) == (st.st_mode, st.st_size, int(st.st_mtime)), (name, a, st)
    assert a.longname.split()[-1] == name, a.longname
assert sorted(sftp.listdir("d")) == ["link"]

# rename never replaces (SFTP v3); posix-rename@openssh.com does.
for name in ["other", "victim"]:
    with sftp.open(name, "w") as f:
        f.write(name.encode())
e = fails(sftp.rename, "other", "victim")
print("rename-onto-existing", type(e).__name__, e)
sftp.rename("other", "d/other")
sftp.posix_rename("d/other", "victim")
assert disk(r("victim")) == b"other"
assert not os.path.exists(r("d/other"))

# Errors clients branch on.
e = fails(sftp.stat, "missing")
assert isinstance(e, FileNotFoundError) and e.errno == errno.ENOENT, e
e = fails(sftp.remove, "d")
print("remove-directory", type(e).__name__, e)
e = fails(sftp.rmdir, "d")
print("rmdir-nonempty", type(e).__name__, e)
e = fails(sftp.mkdir, "d")
print("mkdir-existing", type(e).__name__, e)
e = fails(sftp.open, "missing/x", "w")
print("open-missing-dir", type(e).__name__, e)

sftp.remove("d/link")
sftp.rmdir("d")
sftp.remove("w.bin")
sftp.remove("victim")
assert sorted(os.listdir(remote)) == ["down.bin", "up.bin"], os.listdir(remote)
sftp.close()
client.close()
print("done")
