mod lftp;
