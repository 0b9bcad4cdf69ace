# Datasets whose entry says where their files come from (`download:`) are fetched before
# `prepare` reads them, and only where they are absent: the output is the dataset's own path.


rule download:
    """One dataset's file (a MedMNIST .npz, a URL), downloaded, verified and put in place."""
    output:
        f"{DATA_ROOT}/{{download_file}}",
    log:
        logfile("download", "{download_file}"),
    wildcard_constraints:
        download_file=alternatives(GRID.download_files(), escape=True),
    conda:
        ENV
    params:
        dataset=lambda w: DOWNLOADS[w.download_file][0],
        download=lambda w: DOWNLOADS[w.download_file][1],
    script:
        "../scripts/download.py"


use rule download as download_folder with:
    output:
        directory(f"{DATA_ROOT}/{{download_folder}}"),
    log:
        logfile("download", "{download_folder}"),
    wildcard_constraints:
        download_folder=alternatives(GRID.download_folders(), escape=True),
    params:
        dataset=lambda w: DOWNLOADS[w.download_folder][0],
        download=lambda w: DOWNLOADS[w.download_folder][1],
