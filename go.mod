module github.com/bulkhead-hv/bulkhead

go 1.26.0

require (
	github.com/containerd/cgroups/v3 v3.0.5
	github.com/containerd/containerd/api v1.11.1
	github.com/containerd/ttrpc v1.2.8
	github.com/opencontainers/runtime-spec v1.2.1
	github.com/stretchr/testify v1.11.1
	golang.org/x/arch v0.23.0
	google.golang.org/grpc v1.82.1
	google.golang.org/protobuf v1.36.12-0.20260120151049-f2248ac996af
	gvisor.dev/gvisor v0.0.0-20250911055229-61a46406f068
	k8s.io/cri-api v0.37.2
	pgregory.net/rapid v1.3.0
)

require (
	github.com/containerd/log v0.1.0 // indirect
	github.com/containerd/typeurl/v2 v2.1.1 // indirect
	github.com/davecgh/go-spew v1.1.2-0.20180830191138-d8f796af33cc // indirect
	github.com/gogo/protobuf v1.3.2 // indirect
	github.com/google/btree v1.1.2 // indirect
	github.com/kr/text v0.2.0 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	github.com/pmezard/go-difflib v1.0.1-0.20181226105442-5d4384ee4fb2 // indirect
	github.com/sirupsen/logrus v1.9.3 // indirect
	github.com/usbarmory/tamago v1.26.0 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	golang.org/x/time v0.7.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260526163538-3dc84a4a5aaa // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

tool github.com/usbarmory/tamago/cmd/tamago
