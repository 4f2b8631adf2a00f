#!/usr/bin/env bash
# Install, then upscale a public-domain sample photo (scikit-image's "chelsea") x4 with the default model.
EXTRAS=demo
source "$(dirname "$0")/_env.sh"
mkdir -p out
"$VPY" -c "import skimage, shutil, os; shutil.copy(os.path.join(os.path.dirname(skimage.__file__), 'data', 'chelsea.png'), 'out/sample.png')"
"$VPY" -m resshift_core upscale out/sample.png -o out/sample_x4.png "$@"
echo "wrote out/sample_x4.png"
