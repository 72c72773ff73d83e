//go:build tools

// Package kubeapiserver pins kube-apiserver's main package so `go build` can build it from this module.
package kubeapiserver

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
