//! sftp-server: a drop-in replacement for OpenSSH's sftp-server(8).
