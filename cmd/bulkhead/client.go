package main

import "fmt"

func unknownVM(name, inst string) error {
	ps := "bulkhead ps"
	if remote.addr != "" {
		ps = "bulkhead --remote " + remote.addr + " ps"
	} else if inst != "default" {
		ps += " --name " + inst
	}
	return fmt.Errorf("no VM named %s in instance %s; %s lists them", name, inst, ps)
}
