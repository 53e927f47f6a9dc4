// Kept equal to package.json's version by a unit test; bundled into the image's entrypoint.
export const codexboxVersion = '0.1.0';
