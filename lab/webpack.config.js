// Numbered module ids: the default (deterministic) hashes the container entry's
// absolute path, so a build in another folder would differ from the committed one.
module.exports = {
  optimization: { moduleIds: 'natural' }
};
