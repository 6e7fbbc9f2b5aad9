"""The same flow under Podman: a real `podman system service` (its Docker-compatible socket), the
image handed over as a colleague receives it (save-image from Docker, load-image into Podman), and
`hlsflow flow` through it, giving the same csim.json figures as under Docker.

Podman needs to be installed (Debian: `apt-get install podman`); CI (HLSFLOW_REQUIRE_PODMAN=1)
fails without it, elsewhere these tests are skipped with that reason."""


from test_user_project import csim_figures, run_hlsflow


def test_flow_under_podman_matches_docker(podman_socket, podman_image, built_image, user_dir):
    under_docker = run_hlsflow("flow", "--model", "models/tiny_cnn.keras", "--samples", "models/tiny_samples.npz",
                           "--out", "docker-out", cwd=user_dir, HLSFLOW_IMAGE=built_image)
    assert under_docker.returncode == 0, under_docker.stdout[-2000:] + under_docker.stderr[-2000:]
    under_podman = run_hlsflow("flow", "--model", "models/tiny_cnn.keras", "--samples", "models/tiny_samples.npz",
                           "--out", "podman-out", cwd=user_dir, DOCKER_HOST=podman_socket,
                           HLSFLOW_IMAGE=podman_image)
    assert under_podman.returncode == 0, under_podman.stdout[-3000:] + under_podman.stderr[-3000:]
    assert "Synthesis skipped: no Vivado HLS found" in under_podman.stdout
    docker_figures = csim_figures(user_dir / "docker-out")
    assert csim_figures(user_dir / "podman-out") == docker_figures
    assert docker_figures["samples"] == 64
    # The HLS projects are the same C++ and weights, whichever engine wrote them.
    for name in ("firmware/myproject.cpp", "firmware/parameters.h", "firmware/defines.h"):
        assert (user_dir / "podman-out" / name).read_text() == (user_dir / "docker-out" / name).read_text()


def test_podman_mistake_is_one_sentence(podman_socket, podman_image, user_dir):
    proc = run_hlsflow("convert", "--model", "models/tiny_cnn.keras", "--part", "xc7z999;", cwd=user_dir,
                   DOCKER_HOST=podman_socket, HLSFLOW_IMAGE=podman_image)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and errors[0].startswith("ERROR: Part 'xc7z999;' is not a part name")


def test_warm_commands_under_podman(podman_socket, podman_image, user_dir):
    """HLSFLOW_WARM under Podman: the socket in a bind mount and the descriptors passed over it work
    there too; the warm answer is the cold one, and the container ends when stopped."""
    import docker

    from hlsflow.cli import warm

    env = {"DOCKER_HOST": podman_socket, "HLSFLOW_IMAGE": podman_image}
    args = ("check", "--model", "models/tiny_cnn.keras")
    cold = run_hlsflow(*args, cwd=user_dir, **env)
    assert cold.returncode == 0, cold.stdout[-2000:] + cold.stderr[-2000:]
    warm_runs = [run_hlsflow(*args, cwd=user_dir, HLSFLOW_WARM=60, **env) for _ in range(2)]
    for proc in warm_runs:
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, cold.stdout, cold.stderr), proc.stderr[-2000:]
    client = docker.DockerClient(base_url=podman_socket)
    [container] = client.containers.list(filters={"label": f"{warm.LABEL}=1"})
    container.stop(timeout=10)
