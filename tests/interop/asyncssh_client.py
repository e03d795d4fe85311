import asyncio, os, sys
import asyncssh

# asyncssh's SFTP client through a real SSH connection: arguments as for
# paramiko_client.py. The caller made remote/down.bin and local/up.bin and checks
# the downloaded copy; this checks the rest against the disk it shares with the server.
host, port, user, key, known_hosts, remote, local = sys.argv[1:8]
def r(name): return os.path.join(remote, name)
def l(name): return os.path.join(local, name)
def disk(path):
    with open(path, "rb") as f: return f.read()

async def main():
    async with asyncssh.connect(host, int(port), username=user, client_keys=[key],
                                known_hosts=known_hosts, agent_path=None,
                                config=[], connect_timeout=20) as conn:
        async with conn.start_sftp_client() as sftp:
            # asyncssh falls back or refuses silently without these: make sure they are used.
            h = sftp._handler
            assert (h._supports_posix_rename, h._supports_statvfs, h._supports_fstatvfs,
                    h._supports_hardlink, h._supports_fsync) == (True,) * 5
            await sftp.chdir(remote)
            assert await sftp.getcwd() == remote
            await sftp.put(l("up.bin"), "up.bin", block_size=32768, max_requests=64)
            await sftp.get("down.bin", l("down.bin"), block_size=65536, max_requests=16)
            assert disk(r("up.bin")) == disk(l("up.bin"))
            await sftp.makedirs("a/b/c")
            await sftp.put(l("up.bin"), "a/b/c/again.bin")
            assert sorted(await sftp.listdir("a/b")) == [".", "..", "c"], await sftp.listdir("a/b")
            names = sorted(e.filename for e in await sftp.readdir("."))
            assert names == sorted([".", ".."] + os.listdir(remote)), names
            await sftp.rename("up.bin", "a/up.bin")
            assert not os.path.exists(r("up.bin"))
            await sftp.posix_rename("a/b/c/again.bin", "a/up.bin")
            await sftp.link("a/up.bin", "hard.bin")
            assert os.stat(r("hard.bin")).st_nlink == 2
            vfs = await sftp.statvfs(".")
            st = os.statvfs(remote)
            assert (vfs.bsize, vfs.frsize, vfs.blocks, vfs.namemax) == (st.f_bsize, st.f_frsize, st.f_blocks, st.f_namemax), (vfs, st)
            async with sftp.open("hard.bin", "r+b") as f:
                await f.write(b"fsynced", 5)
                await f.fsync()
                fv = await f.statvfs()
                assert fv.blocks == st.f_blocks
            want = bytearray(disk(l("up.bin")))
            want[5:12] = b"fsynced"
            assert disk(r("hard.bin")) == want
            # asyncssh 2.10 joins the target to its working directory and sends the
            # link path as given (relative to the server's, the home directory).
            await sftp.symlink("hard.bin", r("sym"))
            assert os.readlink(r("sym")) == r("hard.bin")
            assert await sftp.readlink("sym") == r("hard.bin")
            assert await sftp.realpath("a/../sym") == r("hard.bin")  # resolves the link
            await sftp.remove("sym")
            await sftp.rmtree("a")
            await sftp.remove("hard.bin")
            assert sorted(os.listdir(remote)) == ["down.bin"], os.listdir(remote)
            try:
                await sftp.remove("missing")
                raise AssertionError("remove of a missing file succeeded")
            except asyncssh.SFTPNoSuchFile as e:
                print("remove-missing", e.code, e.reason)
    print("done")

asyncio.run(main())
