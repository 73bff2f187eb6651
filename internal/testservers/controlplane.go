/*
Copyright 2026 The distlock Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package testservers

import (
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// StartControlPlane starts kube-apiserver and etcd from $KUBEBUILDER_ASSETS
// (provided by `make setup-envtest`, i.e. hack/kube-binaries.sh) with the
// CRDs in crdDir installed; a missing directory is an error, not an empty
// install. The caller must Stop the returned environment.
func StartControlPlane(crdDir string) (*envtest.Environment, *rest.Config, error) {
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{crdDir},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("starting kube-apiserver and etcd (KUBEBUILDER_ASSETS=%q; run `make setup-envtest`): %w",
			os.Getenv("KUBEBUILDER_ASSETS"), err)
	}
	return env, cfg, nil
}
