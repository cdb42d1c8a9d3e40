package main

import "syscall"

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func killPID(pid int) { syscall.Kill(pid, syscall.SIGKILL) }
